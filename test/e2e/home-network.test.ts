import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createKeystore } from '../../src/chain';
import { missingTool } from '../support/host-tools';
import { knownHostKey, makeSshKeys, startSshd } from '../support/sshd';
import { DaemonProcess } from './daemon-process';

const sh = promisify(execFile);
jest.setTimeout(150_000);

/**
 * Issue 13's home network, for real: the provider daemon in pvr-home behind a NAT router
 * (pvr-router: miniupnpd for the UPnP and NAT-PMP cases, nothing for the carrier-grade case, the
 * home's IPv6 routed for the IPv6 case), or in pvr-dc on a public address; the chain and the tenant
 * in pvr-inet, an OpenSSH relay in pvr-relay (topology.sh draws it). Each of the four paths is
 * taken in `auto` mode, as an owner runs it. The tenant knows only the provider's on-chain
 * registration and runs a whole lease through the URL registered there.
 */
const HERE = join(__dirname, 'home-network');
const ROOT = join(__dirname, '..', '..');
const NETNS = (name: string) => ['nsenter', `--net=/run/netns/${name}`];
const TOOLS = ['ip', 'nsenter', 'iptables-legacy', 'miniupnpd', 'upnpc', '/usr/sbin/sshd', 'ssh-keygen'];

const missing = process.getuid?.() !== 0 ? 'not root (network namespaces need it)' : missingTool(TOOLS);
// CI installs every tool (.ci/run): there a missing one is a failure, not a skip.
if (missing && process.env.CI) throw new Error(`home-network e2e cannot run in CI: ${missing}`);
const describeHome = missing ? describe.skip : describe;
if (missing) console.warn(`home-network e2e skipped: ${missing}`);

const work = mkdtempSync(join(tmpdir(), 'pvr-home-'));
const children: ChildProcess[] = [];
const daemons: DaemonProcess[] = [];
let chain: { rpcUrl: string; chainId: number; marketplaceAddress: string; tokenAddress: string; providerKey: string; providerAddress: string; tenantKey: string };
let miniupnpd: ChildProcess | undefined;
let relay: { host: string; port: number; user: string; keyFile: string; knownHostKey: string; remotePort: number };

/** A long-running child in a namespace; resolves on the first stdout line that `ready` accepts. */
function background(command: string[], ready: (line: string) => boolean, log: string): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(command[0]!, command.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out: string[] = [];
  child.stderr!.on('data', (c: Buffer) => out.push(c.toString()));
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`${command.join(' ')} not ready in 60 s: ${out.join('').slice(-2000)}`)), 60_000);
    const check = (text: string): void => {
      buffer += text;
      const line = buffer.split('\n').find(ready);
      if (line !== undefined) {
        clearTimeout(timer);
        resolve({ child, line });
      }
    };
    child.stdout!.on('data', (c: Buffer) => check(c.toString()));
    child.stderr!.on('data', (c: Buffer) => check(c.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      writeFileSync(join(work, log), out.join(''));
      reject(new Error(`${command.join(' ')} exited with ${code}: ${out.join('').slice(-2000)}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  if (missing) return;
  await sh(join(HERE, 'topology.sh'), ['up']);
  // The chain on "the internet": the embedded devnet (anvil + the marketplace) bound to pvr-inet's address.
  const devnetConfig = join(work, 'devnet.yaml');
  writeFileSync(devnetConfig, `dataDir: ${join(work, 'devnet')}\nlog: { level: warn, format: json }\ndevnet: { host: 11.0.0.2, port: 8545, blockTimeSeconds: 1, challengeWindowSeconds: 20 }\n`);
  const { line } = await background([...NETNS('pvr-inet'), process.execPath, join(ROOT, 'bin', 'provider'), 'devnet', '--json', '-c', devnetConfig], (l) => l.startsWith('{"rpcUrl"'), 'devnet.log');
  chain = JSON.parse(line) as typeof chain;

  // The relay: a stock OpenSSH server with its own host key, one authorized key, GatewayPorts.
  const dir = join(work, 'relay');
  mkdirSync(dir);
  const { clientKey } = await makeSshKeys(dir);
  children.push(await startSshd({ dir, listen: '11.0.1.3', port: 2222, gatewayPorts: 'clientspecified', prefix: NETNS('pvr-relay') }));
  relay = { host: '11.0.1.3', port: 2222, user: 'root', keyFile: clientKey, knownHostKey: knownHostKey(dir), remotePort: 9000 };
}, 120_000);

afterAll(async () => {
  for (const daemon of daemons) await daemon.cleanup().catch(() => undefined);
  for (const child of children.reverse()) await stopChild(child).catch(() => undefined);
  await sh(join(HERE, 'topology.sh'), ['down']).catch(() => undefined);
  if (!process.env.KEEP_E2E_DIRS) rmSync(work, { recursive: true, force: true });
});

/**
 * The provider daemon in pvr-home (or `where`), on the chain in pvr-inet, with the relay known.
 * It listens on every IPv4 address, or with `apiHost: '::'` on IPv6 and IPv4 both.
 */
async function homeDaemon(name: string, reachability: Record<string, unknown>, where: { namespace?: string; apiHost?: string } = {}): Promise<DaemonProcess> {
  const daemon = await DaemonProcess.create(
    name,
    {
      network: { rpcUrl: chain.rpcUrl, chainId: chain.chainId, marketplaceAddress: chain.marketplaceAddress, tokenAddress: chain.tokenAddress, confirmations: 1, pollIntervalMs: 1000 },
      keystore: { passwordEnv: 'E2E_KEYSTORE_PASSWORD' },
      api: { host: where.apiHost ?? '0.0.0.0', port: 8420 },
      reachability,
    },
    // iptables and ip reach the host's namespace, where Docker runs the leases (host-net-bin says why).
    { E2E_KEYSTORE_PASSWORD: 'e2e-password', PATH: `${join(HERE, 'host-net-bin')}:${process.env.PATH ?? ''}` },
    NETNS(where.namespace ?? 'pvr-home'),
  );
  daemons.push(daemon);
  await createKeystore(join(daemon.dataDir, 'keystore.json'), 'e2e-password', { privateKey: chain.providerKey, scryptN: 1024 });
  return daemon;
}

/** miniupnpd on the router, answering UPnP-IGD and NAT-PMP, or NAT-PMP alone. */
async function homeRouter(speaks: { upnp: boolean }): Promise<ChildProcess> {
  await sh(join(HERE, 'topology.sh'), ['miniupnpd-chains']);
  const conf = join(work, 'miniupnpd.conf');
  writeFileSync(conf, [
    'ext_ifname=pvr-r1', 'listening_ip=pvr-r0', 'port=5000', `enable_upnp=${speaks.upnp ? 'yes' : 'no'}`, 'enable_natpmp=yes', 'secure_mode=yes', 'system_uptime=yes',
    'uuid=3b9d1f4e-2c7a-4e11-9d3b-0f5e6a7b8c9d', 'allow 1024-65535 192.168.77.0/24 1024-65535', 'deny 0-65535 0.0.0.0/0 0-65535', '',
  ].join('\n'));
  const ready = speaks.upnp ? 'HTTP listening on port' : 'Listening for NAT-PMP/PCP traffic';
  const { child } = await background(['ip', 'netns', 'exec', 'pvr-router', 'miniupnpd', '-d', '-f', conf, '-P', join(work, 'miniupnpd.pid')], (l) => l.includes(ready), 'miniupnpd.log');
  return child;
}

/** The router's port-forwarding rules that miniupnpd made (iptables-legacy prints its DNAT target as `[unsupported revision]`). */
async function routerMappings(): Promise<string> {
  return (await sh('ip', ['netns', 'exec', 'pvr-router', 'iptables-legacy', '-t', 'nat', '-S', 'MINIUPNPD'])).stdout;
}

interface LeaseSeen {
  apiUrl: string;
  operatorRoute: number | string;
  logs: string[];
  verifiedTotal: string;
  cumulative: string;
  countersigned: boolean;
  endReason: string;
  paid: string;
  refund: string;
  deposit: string;
}

/** The tenant in pvr-inet runs a lease through the provider's registered URL (tenant-lease.ts). */
async function tenantLease(): Promise<LeaseSeen> {
  const args = JSON.stringify({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, marketplace: chain.marketplaceAddress, provider: chain.providerAddress, tenantKey: chain.tenantKey });
  const { stdout } = await sh(NETNS('pvr-inet')[0]!, [...NETNS('pvr-inet').slice(1), join(ROOT, 'node_modules', '.bin', 'tsx'), join(HERE, 'tenant-lease.ts'), args], { cwd: ROOT, timeout: 150_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as LeaseSeen;
}

function expectWholeLease(seen: LeaseSeen, url: string): void {
  expect(seen.apiUrl).toBe(url);
  expect(seen.logs).toEqual(['tick 1', 'tick 2', 'tick 3']);
  expect(seen.verifiedTotal).toBe(seen.cumulative);
  expect(seen.countersigned).toBe(true);
  expect(seen.endReason).toBe('exited');
  expect(BigInt(seen.paid)).toBe(BigInt(seen.cumulative));
  expect(BigInt(seen.paid)).toBeGreaterThan(0n);
  expect(BigInt(seen.refund)).toBe(BigInt(seen.deposit) - BigInt(seen.paid));
}

describeHome('a provider at home, reached from the internet', () => {
  // Each case starts from the bare router: no daemon of an earlier case holds port 8420, no
  // miniupnpd answers, even when that case failed halfway.
  afterEach(async () => {
    for (const daemon of daemons) await daemon.stop();
    if (miniupnpd) await stopChild(miniupnpd);
  });

  it('behind a UPnP router: maps its port, registers the mapped URL, serves a whole lease through it, and unmaps on stop', async () => {
    miniupnpd = await homeRouter({ upnp: true });

    const daemon = await homeDaemon('upnp', { mode: 'auto', upnp: { discoveryTimeoutMs: 5000, ttlSeconds: 120 }, relay });
    const ready = await daemon.start(120_000);
    expect(ready.apiUrl).toBe('https://11.0.0.1:8420');
    expect(await routerMappings()).toContain('-A MINIUPNPD -p tcp -m tcp --dport 8420 -j DNAT');

    const status = await daemon.cli(['status']);
    expect(status.stdout).toContain('reachable  upnp at https://11.0.0.1:8420: verified from outside');
    writeFileSync(join(work, 'status-upnp.txt'), status.stdout);
    const doctor = await daemon.cli(['doctor']);
    expect(doctor.stdout).toMatch(/PASS +reachability +upnp at https:\/\/11\.0\.0\.1:8420: UPnP-IGD at 192\.168\.77\.1 .*; verified from outside/);
    writeFileSync(join(work, 'doctor-upnp.txt'), doctor.stdout);

    const seen = await tenantLease();
    expectWholeLease(seen, 'https://11.0.0.1:8420');
    // The router forwards the tenant's own address: operator routes stay closed to it.
    expect(seen.operatorRoute).toBe(403);

    expect(await daemon.stop()).toBe(0);
    expect((await routerMappings()).trim()).toBe('-N MINIUPNPD');
    const listed = await sh('ip', ['netns', 'exec', 'pvr-home', 'upnpc', '-l'], { timeout: 20_000 });
    expect(listed.stdout).not.toMatch(/TCP\s+8420->/);
  });

  it('behind a router that speaks NAT-PMP only: maps its port that way, verified from outside, and unmaps on stop', async () => {
    miniupnpd = await homeRouter({ upnp: false });
    const daemon = await homeDaemon('natpmp', { mode: 'auto', upnp: { discoveryTimeoutMs: 5000, ttlSeconds: 120 }, relay });
    const ready = await daemon.start(120_000);
    expect(ready.apiUrl).toBe('https://11.0.0.1:8420');
    const status = await daemon.cli(['status']);
    expect(status.stdout).toContain('reachable  upnp at https://11.0.0.1:8420: verified from outside');
    expect(status.stdout).toContain('NAT-PMP at 192.168.77.1 maps 11.0.0.1:8420 to this machine\'s port 8420');
    writeFileSync(join(work, 'status-natpmp.txt'), status.stdout);
    expect(await routerMappings()).toContain('-A MINIUPNPD -p tcp -m tcp --dport 8420 -j DNAT');
    expect(await daemon.stop()).toBe(0);
    expect((await routerMappings()).trim()).toBe('-N MINIUPNPD');
  });

  it('behind a router without UPnP (carrier-grade NAT): goes through the SSH relay and serves a whole lease through it', async () => {
    // Without a relay, doctor says there is no way in, and what to do.
    const stranded = await homeDaemon('nat', { mode: 'auto', upnp: { discoveryTimeoutMs: 2000, ttlSeconds: 120 } });
    const nat = await stranded.cli(['doctor']);
    expect(nat.stdout).toMatch(/FAIL +reachability +behind NAT: no public address on an interface, no UPnP-IGD or NAT-PMP gateway answered/);
    expect(nat.stdout).toMatch(/fix: enable UPnP .* or name an SSH server in reachability\.relay/);
    writeFileSync(join(work, 'doctor-nat.txt'), nat.stdout);

    const daemon = await homeDaemon('relay', { mode: 'auto', upnp: { discoveryTimeoutMs: 3000, ttlSeconds: 120 }, relay });
    const ready = await daemon.start(120_000);
    expect(ready.apiUrl).toBe('https://11.0.1.3:9000');
    const status = await daemon.cli(['status']);
    expect(status.stdout).toContain('reachable  relay at https://11.0.1.3:9000: verified from outside');
    writeFileSync(join(work, 'status-relay.txt'), status.stdout);
    const doctor = await daemon.cli(['doctor']);
    expect(doctor.stdout).toMatch(/PASS +reachability +relay at https:\/\/11\.0\.1\.3:9000: reverse SSH tunnel .*; verified from outside/);
    writeFileSync(join(work, 'doctor-relay.txt'), doctor.stdout);

    const seen = await tenantLease();
    expectWholeLease(seen, 'https://11.0.1.3:9000');
    // Tunnelled bytes come from this machine, but the internet must not pass for loopback.
    expect(seen.operatorRoute).toBe(403);
    expect(await daemon.stop()).toBe(0);
  });

  const direct = [
    { title: 'in a data centre on a public address', name: 'public', where: { namespace: 'pvr-dc' }, url: 'https://11.0.2.2:8420', detail: 'public address 11.0.2.2 on an interface' },
    { title: 'at home behind NAT with IPv6 from the ISP and no UPnP', name: 'ipv6', where: { apiHost: '::' }, url: 'https://[2a0b:7700:77::2]:8420', detail: 'global IPv6 address 2a0b:7700:77::2' },
  ];
  it.each(direct)('$title: registers that address, verified from outside, and serves a whole lease on it', async ({ name, where, url, detail }) => {
    // The relay is only the vantage point here: it fetches /healthz from outside and carries nothing.
    const daemon = await homeDaemon(name, { mode: 'auto', upnp: { discoveryTimeoutMs: 2000, ttlSeconds: 120 }, relay }, where);
    const ready = await daemon.start(120_000);
    expect(ready.apiUrl).toBe(url);
    const status = await daemon.cli(['status']);
    expect(status.stdout).toContain(`reachable  ${name} at ${url}: verified from outside`);
    writeFileSync(join(work, `status-${name}.txt`), status.stdout);
    const doctor = await daemon.cli(['doctor']);
    expect(doctor.stdout.split('\n').find((line) => /^PASS +reachability /.test(line))).toContain(`${name} at ${url}: ${detail}; verified from outside`);
    writeFileSync(join(work, `doctor-${name}.txt`), doctor.stdout);

    const seen = await tenantLease();
    expectWholeLease(seen, url);
    expect(seen.operatorRoute).toBe(403);
    expect(await daemon.stop()).toBe(0);
  });

  it('at home with IPv6 behind a router that firewalls it (as most do by default): the check from outside fails, so it goes through the relay', async () => {
    // Dropped, not refused: the relay's probe waits out its timeout, as it would on a real router.
    await sh('ip', ['netns', 'exec', 'pvr-router', 'ip6tables-legacy', '-A', 'FORWARD', '-i', 'pvr-r1', '-d', '2a0b:7700:77::/64', '-p', 'tcp', '--dport', '8420', '-j', 'DROP']);
    const daemon = await homeDaemon('ipv6-firewalled', { mode: 'auto', upnp: { discoveryTimeoutMs: 2000, ttlSeconds: 120 }, relay }, { apiHost: '::' });
    const ready = await daemon.start(120_000);
    expect(ready.apiUrl).toBe('https://11.0.1.3:9000');
    const status = await daemon.cli(['status']);
    expect(status.stdout).toContain('reachable  relay at https://11.0.1.3:9000: verified from outside');
    expect(await daemon.stop()).toBe(0);
  });
});
