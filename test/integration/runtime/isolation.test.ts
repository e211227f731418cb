import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bridgeName } from '../../../src/runtime';
import { aManifest } from '../../fixtures/runtime';
import { RuntimeHarness, sh } from './harness';

jest.setTimeout(90_000);

/*
 * A namespace "outside" stands for the rest of the world: it holds a public-range address
 * (198.51.100.2, TEST-NET-2, not in any blocked range) and a private one (10.213.7.2), with a web
 * server on both. The host side of its veth holds 198.51.100.1 and 10.213.7.1, which are the
 * host's own addresses. No traffic leaves this machine.
 */
const suffix = process.pid.toString(36).slice(-4);
const NS = `provider-it-${suffix}`;
const VETH_HOST = `pvt${suffix}h`;
const VETH_NS = `pvt${suffix}n`;
const PUBLIC_REMOTE = '198.51.100.2';
const PUBLIC_HOST = '198.51.100.1';
const PRIVATE_REMOTE = '10.213.7.2';
const WEB_PORT = 8089;

const h = new RuntimeHarness({ runtime: { nofileLimit: 4096, portRange: { from: 39200, to: 39299 } } });
const allowing = new RuntimeHarness({ runtime: { nofileLimit: 4096, egress: { allowCidrs: ['10.213.7.0/30'] } } });
// Leases of this one resolve through a DNS server on one of the host's own (private) addresses.
const PRIVATE_HOST = '10.213.7.1';
const resolving = new RuntimeHarness({ runtime: { nofileLimit: 4096, egress: { dnsServers: [PRIVATE_HOST] } } });
let dns: Socket | undefined;

/** Answers every A query with 198.51.100.2 and every other query with no records. */
function startDnsServer(): Promise<Socket> {
  const socket = createSocket('udp4');
  socket.on('message', (query, peer) => {
    let offset = 12;
    while (offset < query.length && query[offset] !== 0) offset += (query[offset] as number) + 1;
    const questionEnd = offset + 5;
    const qtype = query.readUInt16BE(offset + 1);
    const header = Buffer.from(query.subarray(0, 12));
    header.writeUInt16BE(0x8180, 2);
    header.writeUInt16BE(qtype === 1 ? 1 : 0, 6);
    header.writeUInt16BE(0, 8);
    header.writeUInt16BE(0, 10);
    const answer = qtype === 1 ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 51, 100, 2]) : Buffer.alloc(0);
    socket.send(Buffer.concat([header, query.subarray(12, questionEnd), answer]), peer.port, peer.address);
  });
  return new Promise((resolve) => socket.bind(53, PRIVATE_HOST, () => resolve(socket)));
}
let image: string;
const chainsOf = (leaseId: string): { forward: string; input: string } => h.firewall.chainsOf(leaseId);
let hostServer: Server;
let hostPort: number;

async function ip(...args: string[]): Promise<void> {
  await sh('ip', args);
}

beforeAll(async () => {
  image = await h.imageId();
  await ip('netns', 'add', NS);
  await ip('link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NS);
  await ip('link', 'set', VETH_NS, 'netns', NS);
  await ip('addr', 'add', `${PUBLIC_HOST}/30`, 'dev', VETH_HOST);
  await ip('addr', 'add', '10.213.7.1/30', 'dev', VETH_HOST);
  await ip('link', 'set', VETH_HOST, 'up');
  await ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${PUBLIC_REMOTE}/30`, 'dev', VETH_NS);
  await ip('netns', 'exec', NS, 'ip', 'addr', 'add', `${PRIVATE_REMOTE}/30`, 'dev', VETH_NS);
  await ip('netns', 'exec', NS, 'ip', 'link', 'set', VETH_NS, 'up');
  await ip('netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up');
  await sh('mkdir', ['-p', `/tmp/${NS}-www`]);
  await sh('sh', ['-c', `echo outside > /tmp/${NS}-www/index.html`]);
  await ip('netns', 'exec', NS, 'busybox', 'httpd', '-p', String(WEB_PORT), '-h', `/tmp/${NS}-www`);
  // A server on the host itself, on every address.
  hostServer = createServer((_req, res) => res.end('host\n'));
  await new Promise<void>((resolve) => hostServer.listen(0, '0.0.0.0', resolve));
  hostPort = (hostServer.address() as AddressInfo).port;
  // Both outside addresses answer the host: the listener works, so a failure from a lease is the firewall.
  for (const addr of [PUBLIC_REMOTE, PRIVATE_REMOTE]) {
    expect(await fetchOnHost(addr, WEB_PORT)).toBe('outside');
  }
});

afterAll(async () => {
  await h.cleanup();
  await allowing.cleanup();
  await resolving.cleanup();
  dns?.close();
  hostServer?.close();
  await sh('ip', ['netns', 'pids', NS]).then(async ({ stdout }) => {
    for (const pid of stdout.split('\n').filter(Boolean)) await sh('kill', [pid]).catch(() => undefined);
  }).catch(() => undefined);
  await ip('link', 'del', VETH_HOST).catch(() => undefined);
  await ip('netns', 'del', NS).catch(() => undefined);
  await sh('rm', ['-rf', `/tmp/${NS}-www`]);
});

// busybox-static's wget segfaults on Debian 12; nc speaks HTTP/1.0 well enough.
const GET = `printf 'GET / HTTP/1.0\\r\\n\\r\\n'`;

/** HTTP GET from inside a lease; the body's last line, or undefined when nothing answered within 3 s. */
async function fetchFrom(leaseId: string, url: string, harness: RuntimeHarness = h): Promise<string | undefined> {
  const [, host, port] = /^http:\/\/([^:/]+):(\d+)\//.exec(url) ?? [];
  const { stdout } = await harness.execIn(leaseId, `${GET} | nc -w 3 ${host} ${port} | tail -n 1`, 10_000);
  return stdout.trim() === '' ? undefined : stdout.trim();
}

/** The same from the host, or from inside the outside namespace. */
async function fetchOnHost(host: string, port: number, netns?: string): Promise<string> {
  const cmd = `${GET} | busybox nc -w 3 ${host} ${port} | tail -n 1`;
  const { stdout } = netns ? await sh('ip', ['netns', 'exec', netns, 'sh', '-c', cmd]) : await sh('sh', ['-c', cmd]);
  return stdout.trim();
}

describe('tenant network isolation', () => {
  let a: string;
  let b: string;
  let bAddress: string;

  beforeAll(async () => {
    a = h.leaseId('neta');
    b = h.leaseId('netb');
    const web = aManifest({ command: ['sh', '-c'], args: [`mkdir -p /www && echo lease-b > /www/index.html && exec httpd -f -p 8080 -h /www`], ports: [{ containerPort: 8080 }] });
    const idle = aManifest({ args: ['sleep', '600'] });
    // Lease a goes the way the lease engine starts leases: network and rules while the image pulls.
    await h.runtime.prepareNetwork(a, idle);
    await h.runtime.start({ manifest: idle, allocation: h.allocation(a, idle), imageId: image });
    await h.runtime.start({ manifest: web, allocation: h.allocation(b, web, { hostPorts: [39201] }), imageId: image });
    const info = await h.runtime.inspect(b);
    bAddress = Object.values(info.NetworkSettings.Networks)[0]?.IPAddress ?? '';
    expect(bAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  test('a public-range address still routes', async () => {
    expect(await fetchFrom(a, `http://${PUBLIC_REMOTE}:${WEB_PORT}/`)).toBe('outside');
  });

  test('a private address is unreachable', async () => {
    expect(await fetchFrom(a, `http://${PRIVATE_REMOTE}:${WEB_PORT}/`)).toBeUndefined();
  });

  test('a private range the operator allow-lists is reachable (the drop above is the firewall, not routing)', async () => {
    const d = allowing.leaseId('netd');
    const m = aManifest({ args: ['sleep', '600'] });
    await allowing.runtime.start({ manifest: m, allocation: allowing.allocation(d, m), imageId: image });
    expect(await fetchFrom(d, `http://${PRIVATE_REMOTE}:${WEB_PORT}/`, allowing)).toBe('outside');
    await allowing.runtime.remove(d);
  });

  test('names resolve through a resolver on a private host address, while the rest of that address stays closed', async () => {
    dns = await startDnsServer();
    const e = resolving.leaseId('dns');
    const m = aManifest({ args: ['sleep', '600'] });
    await resolving.runtime.start({ manifest: m, allocation: resolving.allocation(e, m), imageId: image });
    const answer = await resolving.execIn(e, 'nslookup -type=a outside.lease-test.example', 15_000);
    expect(answer.stdout).toContain(PUBLIC_REMOTE);
    expect(await fetchFrom(e, `http://outside.lease-test.example:${WEB_PORT}/`, resolving)).toBe('outside');
    expect(await fetchFrom(e, `http://${PRIVATE_HOST}:${hostPort}/`, resolving)).toBeUndefined();
    await resolving.runtime.remove(e);
  });

  test("the host's own addresses are unreachable: its public-range address and the lease's gateway", async () => {
    const gateway = Object.values((await h.runtime.inspect(a)).NetworkSettings.Networks)[0]?.Gateway ?? '';
    expect(await fetchFrom(a, `http://${PUBLIC_HOST}:${hostPort}/`)).toBeUndefined();
    expect(await fetchFrom(a, `http://${gateway}:${hostPort}/`)).toBeUndefined();
    // ...while the host itself reaches its server there.
    expect(await fetchOnHost(PUBLIC_HOST, hostPort)).toBe('host');
  });

  test("another lease's container is unreachable, directly and through its published port on the host", async () => {
    expect(await fetchFrom(a, `http://${bAddress}:8080/`)).toBeUndefined();
    const gateway = Object.values((await h.runtime.inspect(a)).NetworkSettings.Networks)[0]?.Gateway ?? '';
    expect(await fetchFrom(a, `http://${gateway}:39201/`)).toBeUndefined();
  });

  test('a published port answers clients from outside the lease', async () => {
    expect(await fetchOnHost('127.0.0.1', 39201)).toBe('lease-b');
    expect(await fetchOnHost(PUBLIC_HOST, 39201, NS)).toBe('lease-b');
  });

  test('a lease whose manifest says egress none reaches nothing, not even public addresses', async () => {
    const c = h.leaseId('netc');
    const m = aManifest({ args: ['sleep', '600'], egress: 'none' });
    await h.runtime.start({ manifest: m, allocation: h.allocation(c, m), imageId: image });
    expect(await fetchFrom(c, `http://${PUBLIC_REMOTE}:${WEB_PORT}/`)).toBeUndefined();
    await h.runtime.remove(c);
  });

  test('the firewall rules are keyed on the lease bridge and go away with the lease', async () => {
    const rules = (await sh('iptables', ['-S'])).stdout;
    expect(rules).toContain(`-A DOCKER-USER -i ${bridgeName(a)} -m comment --comment "provider-lease:${a}" -j ${chainsOf(a).forward}`);
    expect(rules).toContain(`-A INPUT -i ${bridgeName(a)} -m comment --comment "provider-lease:${a}" -j ${chainsOf(a).input}`);
    expect((await sh('ip', ['link', 'show', bridgeName(a)])).stdout).toContain(bridgeName(a));
    await h.runtime.remove(a);
    const after = (await sh('iptables', ['-S'])).stdout;
    expect(after).not.toContain(`provider-lease:${a}"`);
    expect(after).not.toContain(chainsOf(a).forward);
    await expect(sh('ip', ['link', 'show', bridgeName(a)])).rejects.toBeDefined();
  });

  test("rules and networks of a lease that no longer exists are removed on reconcile; those of known leases stay, and another live instance's are not touched", async () => {
    // What a daemon that crashed between preparing a lease and starting it leaves behind.
    const ghost = h.leaseId('ghost');
    const pulling = h.leaseId('pulling');
    // Another daemon on the same engine (the `allowing` harness), alive, with a lease still pulling.
    const theirs = allowing.leaseId('theirs');
    await h.runtime.prepareNetwork(ghost, aManifest());
    await h.runtime.prepareNetwork(pulling, aManifest());
    await allowing.runtime.prepareNetwork(theirs, aManifest());
    expect(await h.firewall.leaseChainsPresent()).toContain(chainsOf(ghost).forward);
    await h.runtime.reconcile([b, pulling]);
    expect(await h.firewall.leaseChainsPresent()).not.toContain(chainsOf(ghost).forward);
    expect(await h.firewall.leaseChainsPresent()).not.toContain(chainsOf(ghost).input);
    await expect(sh('docker', ['network', 'inspect', `provider-lease-${ghost}`])).rejects.toBeDefined();
    expect(await h.firewall.leaseChainsPresent()).toEqual(expect.arrayContaining([chainsOf(b).forward, chainsOf(pulling).forward]));
    await sh('docker', ['network', 'inspect', `provider-lease-${pulling}`]);
    expect(await allowing.firewall.leaseChainsPresent()).toEqual(expect.arrayContaining(Object.values(allowing.firewall.chainsOf(theirs))));
    await sh('docker', ['network', 'inspect', `provider-lease-${theirs}`]);
    await allowing.runtime.remove(theirs);
  });

  test('reconcile reinstalls the rules of a running lease when something flushed them', async () => {
    await h.firewall.remove(b);
    expect(await h.firewall.leaseChainsPresent()).not.toContain(chainsOf(b).forward);
    await h.runtime.reconcile([b]);
    expect(await h.firewall.leaseChainsPresent()).toEqual(expect.arrayContaining([chainsOf(b).forward, chainsOf(b).input]));
    expect((await sh('iptables', ['-S', 'DOCKER-USER'])).stdout).toContain(`-i ${bridgeName(b)} `);
  });
});
