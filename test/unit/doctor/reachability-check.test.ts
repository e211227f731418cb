import { configSchema } from '../../../src/config';
import type { DoctorContext } from '../../../src/doctor';
import { checkReachability } from '../../../src/doctor/reachability';
import type { InterfaceTable, NatDiscovery, NatGateway } from '../../../src/reachability';

const NETWORK = { rpcUrl: 'http://11.0.0.2:8545', chainId: 31337, marketplaceAddress: '0x5FbDB2315678afecb367f032d93F642f64180aa3' };
const home: InterfaceTable = { eth0: [{ address: '192.168.1.20', family: 'IPv4', internal: false, netmask: '', mac: '', cidr: null }] };
const noRouter: NatDiscovery = { find: async () => undefined };

function ctx(reachability: object = {}): DoctorContext {
  return { config: configSchema.parse({ dataDir: '/tmp/x', network: NETWORK, reachability: { upnp: { discoveryTimeoutMs: 200 }, ...reachability } }) } as unknown as DoctorContext;
}

describe('doctor: reachability', () => {
  it('behind NAT with no UPnP and no relay fails, saying what to do', async () => {
    const result = await checkReachability(ctx(), { daemon: async () => undefined, interfaces: () => home, discovery: noRouter });
    expect(result.status).toBe('fail');
    expect(result.detail).toMatch(/^behind NAT: no public address on an interface, no UPnP-IGD or NAT-PMP gateway answered within 200 ms/);
    expect(result.fix).toMatch(/enable UPnP \(or NAT-PMP\) on the home router.*reachability\.relay/);
  });

  it('with the daemon down, says a start would map the port on the gateway that answers', async () => {
    const gateway = { kind: 'upnp', description: 'UPnP-IGD at 192.168.1.1', localAddress: '192.168.1.20', close: async () => undefined } as unknown as NatGateway;
    const result = await checkReachability(ctx(), { daemon: async () => undefined, interfaces: () => home, discovery: { find: async () => gateway } });
    expect(result).toMatchObject({ status: 'pass', detail: 'the daemon is down; a start would map port 8420 on UPnP-IGD at 192.168.1.1' });
  });

  it('with the daemon running, reports its path and proof, and fails a path the relay could not reach', async () => {
    const verified = await checkReachability(ctx(), {
      daemon: async () => ({ path: 'relay', url: 'http://11.0.1.3:9000', verified: 'outside', detail: 'reverse SSH tunnel through relay@11.0.1.3:2222; verified from outside', fix: null }),
      interfaces: () => home,
      discovery: noRouter,
    });
    expect(verified).toMatchObject({ status: 'pass', detail: 'relay at http://11.0.1.3:9000: reverse SSH tunnel through relay@11.0.1.3:2222; verified from outside' });
    const failed = await checkReachability(ctx(), {
      daemon: async () => ({ path: 'upnp', url: 'http://11.0.0.1:8420', verified: 'failed', detail: 'the relay could not reach it', fix: 'enable UPnP' }),
      interfaces: () => home,
      discovery: noRouter,
    });
    expect(failed).toMatchObject({ status: 'fail', fix: 'enable UPnP' });
  });
});
