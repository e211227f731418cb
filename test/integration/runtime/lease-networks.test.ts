import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InstanceRegistry, OrphanCollector, networkName } from '../../../src/runtime';
import type { InstanceRecord } from '../../../src/runtime';
import { silentLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { aManifest } from '../../fixtures/runtime';
import { RuntimeHarness, sh } from './harness';

jest.setTimeout(180_000);

/*
 * Pools of this file's own (10.79.0.0/16 is no default): the subnets a lease gets are then known.
 * Another helper's leases on the default pool cannot take them.
 */
const suffix = process.pid.toString(36).slice(-4);
const harnesses: RuntimeHarness[] = [];
function harness(pool: string, options: { instanceId?: string } = {}): RuntimeHarness {
  const h = new RuntimeHarness({ runtime: { nofileLimit: 4096, network: { subnetPool: pool, subnetPrefix: 28 } } }, silentLogger(), options);
  harnesses.push(h);
  return h;
}

async function subnetOf(h: RuntimeHarness, leaseId: string): Promise<string | undefined> {
  const info = await h.docker.getNetwork(networkName(leaseId)).inspect();
  return (info as { IPAM?: { Config?: { Subnet?: string }[] } }).IPAM?.Config?.[0]?.Subnet;
}

afterAll(async () => {
  for (const h of harnesses) await h.cleanup();
});

describe('lease subnets from the pool', () => {
  const foreignNetwork = `provider-it-foreign-${suffix}`;
  const route = '10.79.0.32/28';

  afterAll(async () => {
    await sh('docker', ['network', 'rm', foreignNetwork]).catch(() => undefined);
    await sh('ip', ['route', 'del', 'blackhole', route]).catch(() => undefined);
  });

  test("a lease's network and container get their addresses from runtime.network.subnetPool", async () => {
    const h = harness('10.79.0.0/24');
    const leaseId = h.leaseId('pool');
    const manifest = aManifest({ args: ['sleep', '300'] });
    await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: await h.imageId() });
    expect(await subnetOf(h, leaseId)).toBe('10.79.0.0/28');
    const address = Object.values((await h.runtime.inspect(leaseId)).NetworkSettings.Networks)[0]?.IPAddress ?? '';
    expect(address).toMatch(/^10\.79\.0\.([1-9]|1[0-4])$/);
    const labels = (await h.docker.getNetwork(networkName(leaseId)).inspect()).Labels;
    expect(labels?.['provider.instance']).toBe(h.instanceId);
    expect((await h.docker.getContainer(`provider-lease-${leaseId}`).inspect()).Config.Labels['provider.instance']).toBe(h.instanceId);
  });

  test('after a restart, subnets in use by the lease networks, by another Docker network and by a host route are skipped', async () => {
    const before = harnesses[0] as RuntimeHarness;
    await sh('docker', ['network', 'create', '--subnet', '10.79.0.16/28', foreignNetwork]);
    await sh('ip', ['route', 'add', 'blackhole', route]);
    // The same instance, a new runtime: nothing of the first one's memory is left.
    const after = harness('10.79.0.0/24', { instanceId: before.instanceId });
    const leaseId = after.leaseId('restart');
    await after.runtime.prepareNetwork(leaseId, aManifest());
    expect(await subnetOf(after, leaseId)).toBe('10.79.0.48/28');
  });

  test("40 lease networks at once, more than Docker's default address pools hold, each with a subnet of its own", async () => {
    const h = harness('10.79.16.0/20');
    const ids = Array.from({ length: 40 }, (_, i) => h.leaseId(`many${i}`));
    await Promise.all(ids.map((id) => h.runtime.prepareNetwork(id, aManifest())));
    const subnets = await Promise.all(ids.map((id) => subnetOf(h, id)));
    expect(new Set(subnets).size).toBe(40);
    for (const subnet of subnets) expect(subnet).toMatch(/^10\.79\.(1[6-9]|2\d|3[01])\.\d+\/28$/);
    await Promise.all(ids.map((id) => h.runtime.remove(id)));
  });

  test('an exhausted pool fails the lease with SUBNET_POOL_EXHAUSTED, and leaves nothing behind', async () => {
    const h = harness('10.79.0.0/28');
    const leaseId = h.leaseId('full');
    // 10.79.0.0/28 is the first test's lease network.
    await expect(h.runtime.prepareNetwork(leaseId, aManifest())).rejects.toMatchObject({ code: 'SUBNET_POOL_EXHAUSTED', fix: expect.stringContaining('runtime.network.subnetPool') });
    await expect(sh('docker', ['network', 'inspect', networkName(leaseId)])).rejects.toBeDefined();
    expect(await h.firewall.leaseChainsPresent()).toEqual([]);
  });
});

describe('what other daemon instances on the engine own', () => {
  let registryDir: string;
  beforeAll(() => {
    registryDir = mkdtempSync(join(tmpdir(), 'provider-instances-'));
  });
  afterAll(() => rmSync(registryDir, { recursive: true, force: true }));

  /** A record of an instance whose process is provably dead (from another boot), last seen `heartbeatAt`. */
  function recordDead(instanceId: string, heartbeatAt: number): void {
    const record: InstanceRecord = { instanceId, pid: 1, processStart: '0', pidNamespace: 'pid:[0]', bootId: 'a-boot-long-gone', heartbeatAt, dataDir: '/nowhere' };
    writeFileSync(join(registryDir, `${instanceId}.json`), JSON.stringify(record));
  }

  test('a lease starts next to leftovers of a gone instance, which are collected; those of a live instance and of one gone for less than the grace period stay', async () => {
    const pool = '10.79.64.0/24';
    const dead = harness(pool, { instanceId: `tdead${suffix}` });
    const recent = harness(pool, { instanceId: `trcnt${suffix}` });
    const live = harness(pool, { instanceId: `tlive${suffix}` });
    const ours = harness(pool);
    const leftover = dead.leaseId('left');
    const recentLease = recent.leaseId('recent');
    const liveLease = live.leaseId('pulling');
    await dead.runtime.prepareNetwork(leftover, aManifest());
    await recent.runtime.prepareNetwork(recentLease, aManifest());
    await live.runtime.prepareNetwork(liveLease, aManifest());
    const registry = new InstanceRegistry({ dir: registryDir, clock: systemClock, log: silentLogger() });
    recordDead(dead.instanceId, Date.now() - 3_600_000);
    recordDead(recent.instanceId, Date.now());
    await new InstanceRegistry({ dir: registryDir, clock: systemClock, log: silentLogger() }).register(live.instanceId, '/data/live');
    await registry.register(ours.instanceId, '/data/ours');

    // Our lease starts with all of that on the engine and in the pool.
    const mine = ours.leaseId('mine');
    const manifest = aManifest({ args: ['sleep', '300'] });
    await ours.runtime.start({ manifest, allocation: ours.allocation(mine, manifest), imageId: await ours.imageId() });
    expect(await subnetOf(ours, mine)).toBe('10.79.64.48/28');
    // Its reconcile leaves everyone else's alone, dead or alive: proving who is gone is the collector's.
    await ours.runtime.reconcile([mine]);
    await sh('docker', ['network', 'inspect', networkName(leftover)]);

    const collector = new OrphanCollector({ docker: ours.docker, firewall: ours.firewall, registry, clock: systemClock, log: silentLogger(), graceMs: 900_000, requestTimeoutMs: 10_000 });
    const collected = await collector.collect();
    expect(collected.networks).toEqual([networkName(leftover)]);
    expect(collected.chains.sort()).toEqual(Object.values(dead.firewall.chainsOf(leftover)).map((c) => `iptables:${c}`).concat(Object.values(dead.firewall.chainsOf(leftover)).map((c) => `ip6tables:${c}`)).sort());
    await expect(sh('docker', ['network', 'inspect', networkName(leftover)])).rejects.toBeDefined();
    expect(await registry.read(dead.instanceId)).toBeUndefined();

    for (const [h, leaseId] of [[recent, recentLease], [live, liveLease]] as const) {
      await sh('docker', ['network', 'inspect', networkName(leaseId)]);
      expect(await h.firewall.leaseChainsPresent()).toEqual(expect.arrayContaining(Object.values(h.firewall.chainsOf(leaseId))));
    }
    expect((await ours.runtime.status(mine)).running).toBe(true);
    // A second pass finds nothing more.
    expect(await collector.collect()).toEqual({ networks: [], chains: [] });
  });
});
