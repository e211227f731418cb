import { configSchema, type ProviderConfig } from '../../../src/config';
import { silentLogger } from '../../../src/log';
import { Reachability, type InterfaceTable, type NatDiscovery, type NatGateway, type RelayTunnel } from '../../../src/reachability';
import { manualClock } from '../../../src/util/clock';

const NETWORK = { rpcUrl: 'http://11.0.0.2:8545', chainId: 31337, marketplaceAddress: '0x5FbDB2315678afecb367f032d93F642f64180aa3' };
const RELAY = { host: '11.0.1.3', port: 2222, user: 'relay', keyFile: '/k', knownHostKey: 'SHA256:x', remotePort: 9000 };

function config(reachability: object = {}, extra: object = {}): ProviderConfig {
  return configSchema.parse({ dataDir: '/tmp/x', network: NETWORK, reachability, ...extra });
}

const home: InterfaceTable = { eth0: [{ address: '192.168.77.2', family: 'IPv4', internal: false, netmask: '', mac: '', cidr: null }] };
const server: InterfaceTable = { eth0: [{ address: '85.10.20.30', family: 'IPv4', internal: false, netmask: '', mac: '', cidr: null }] };

function aRouter(externalHost = '11.0.0.1') {
  const calls: string[] = [];
  const gateway: NatGateway = {
    kind: 'upnp',
    description: 'UPnP-IGD at 192.168.77.1',
    localAddress: '192.168.77.2',
    map: async (port, _host, { externalPort }) => {
      calls.push(`map ${port}`);
      return { externalHost, externalPort };
    },
    unmap: async (port) => {
      calls.push(`unmap ${port}`);
    },
    close: async () => undefined,
  };
  return { calls, discovery: { find: async () => gateway } as NatDiscovery };
}

const noRouter: NatDiscovery = { find: async () => undefined };

/** A relay that answers probes with `answers(url)`. */
function aRelay(answers: (url: string) => number | Error = () => 200) {
  const calls: string[] = [];
  const relay: RelayTunnel = {
    publicHost: '11.0.1.3',
    open: async ({ forward }) => {
      calls.push(forward ? 'open forwarding' : 'open vantage');
    },
    probe: async (url) => {
      calls.push(`probe ${url.origin}`);
      const answer = answers(url.origin);
      if (answer instanceof Error) throw answer;
      return answer;
    },
    close: async () => {
      calls.push('close');
    },
  };
  return { calls, relay };
}

function resolve(cfg: ProviderConfig, parts: { interfaces?: InterfaceTable; discovery?: NatDiscovery; relay?: RelayTunnel }) {
  return Reachability.resolve({
    config: cfg,
    apiPort: 8420,
    scheme: 'http',
    listenUrl: 'http://127.0.0.1:8420',
    interfaces: () => parts.interfaces ?? home,
    discovery: parts.discovery ?? noRouter,
    relay: () => parts.relay ?? aRelay().relay,
    clock: manualClock(0),
    log: silentLogger(),
  });
}

describe('Reachability.resolve', () => {
  it('takes a public address on an interface first, unverified without a relay', async () => {
    const { calls, discovery } = aRouter();
    const r = await resolve(config(), { interfaces: server, discovery });
    expect(r.status).toMatchObject({ path: 'public', url: 'http://85.10.20.30:8420', verified: 'no-vantage' });
    expect(r.status.detail).toContain('not verified from outside (no vantage point)');
    expect(calls).toEqual([]);
  });

  it('behind a home router maps the port and registers the router\'s external address, verified by the relay', async () => {
    const router = aRouter();
    const relay = aRelay();
    const r = await resolve(config({ relay: RELAY }), { discovery: router.discovery, relay: relay.relay });
    expect(r.status).toMatchObject({ path: 'upnp', url: 'http://11.0.0.1:8420', verified: 'outside' });
    expect(relay.calls).toEqual(['open vantage', 'probe http://11.0.0.1:8420', 'close']);
    await r.stop();
    expect(router.calls).toEqual(['map 8420', 'unmap 8420']);
  });

  it('behind carrier-grade NAT (no UPnP) goes through the relay and proves it from the relay', async () => {
    const relay = aRelay();
    const r = await resolve(config({ relay: RELAY }), { relay: relay.relay });
    expect(r.status).toMatchObject({ path: 'relay', url: 'http://11.0.1.3:9000', verified: 'outside' });
    expect(relay.calls).toEqual(['open forwarding', 'probe http://11.0.1.3:9000']);
    await r.stop();
    expect(relay.calls.at(-1)).toBe('close');
  });

  it('drops a mapping the relay cannot reach (a router that maps but does not forward) for the relay', async () => {
    const router = aRouter();
    const relay = aRelay((url) => (url.includes('11.0.0.1') ? new Error('connect ECONNREFUSED') : 200));
    const r = await resolve(config({ relay: RELAY }), { discovery: router.discovery, relay: relay.relay });
    expect(r.status).toMatchObject({ path: 'relay', verified: 'outside' });
    expect(router.calls).toEqual(['map 8420', 'unmap 8420']);
  });

  it('refuses a router whose external address is itself private (double NAT, CGNAT) and removes the mapping', async () => {
    const router = aRouter('100.64.3.4');
    const r = await resolve(config(), { discovery: router.discovery });
    expect(r.status.path).toBe('none');
    expect(r.status.detail).toContain('100.64.3.4 is not public');
    expect(router.calls).toEqual(['map 8420', 'unmap 8420']);
  });

  it('with no path says so, with the fix (enable UPnP, configure a relay), and registers the listen URL', async () => {
    const r = await resolve(config(), {});
    expect(r.status).toMatchObject({ path: 'none', url: 'http://127.0.0.1:8420', verified: 'failed' });
    expect(r.status.fix).toMatch(/enable UPnP.*reachability\.relay/);
  });

  it('keeps api.publicUrl as an explicit override, and is off on the devnet', async () => {
    const configured = await resolve(config({}, { api: { publicUrl: 'https://gpu.example.org:8420' } }), { interfaces: server });
    expect(configured.status).toMatchObject({ path: 'configured', url: 'https://gpu.example.org:8420' });
    const devnet = await resolve(configSchema.parse({ dataDir: '/tmp/x' }), { discovery: aRouter().discovery });
    expect(devnet.status).toMatchObject({ path: 'local', url: 'http://127.0.0.1:8420', verified: 'not-needed' });
  });

  it('asks no router when the API listens on loopback only', async () => {
    const router = aRouter();
    const r = await resolve(config({}, { api: { host: '127.0.0.1' } }), { discovery: router.discovery });
    expect(r.status).toMatchObject({ path: 'local', detail: 'the listen address (the API listens on loopback only)' });
    expect(router.calls).toEqual([]);
  });

  it('fails start-up when a named mode cannot be had', async () => {
    await expect(resolve(config({ mode: 'upnp' }), {})).rejects.toMatchObject({ code: 'REACHABILITY_FAILED' });
    const refusing: RelayTunnel = { ...aRelay().relay, open: async () => Promise.reject(new Error('auth failed')) };
    await expect(resolve(config({ mode: 'relay', relay: RELAY }), { relay: refusing })).rejects.toMatchObject({ code: 'REACHABILITY_FAILED' });
  });
});
