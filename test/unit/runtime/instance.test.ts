import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InstanceRegistry, judgeOwner, processStartOf, type HostFacts, type InstanceRecord } from '../../../src/runtime/instance';
import type Docker from 'dockerode';
import { Firewall, OrphanCollector } from '../../../src/runtime';
import { silentLogger } from '../../../src/log';
import { ManualClock } from '../../../src/util/clock';

const GRACE = 900_000;
const record: InstanceRecord = {
  instanceId: 'pdead0001',
  pid: 4242,
  processStart: '1500',
  pidNamespace: 'pid:[4026531836]',
  bootId: 'boot-a',
  heartbeatAt: 1_000_000,
  dataDir: '/var/lib/provider',
};
const host = (starts: Record<number, string> = {}, overrides: Partial<HostFacts> = {}): HostFacts => ({
  bootId: 'boot-a',
  pidNamespace: 'pid:[4026531836]',
  processStart: (pid) => starts[pid],
  ...overrides,
});

describe('whether another instance is provably gone', () => {
  test.each([
    ['its process runs (same pid, same start time)', record, host({ 4242: '1500' }), record.heartbeatAt + 10 * GRACE, 'alive'],
    ['no record: nothing is proven', undefined, host(), 10 * GRACE, 'unknown'],
    ['its process is in another pid namespace: the pid means nothing here', record, host({}, { pidNamespace: 'pid:[1]' }), record.heartbeatAt + 10 * GRACE, 'unknown'],
    ['the pid is gone, heartbeat older than the grace period', record, host(), record.heartbeatAt + GRACE, 'abandoned'],
    ['the pid was reused by another process (another start time)', record, host({ 4242: '9999' }), record.heartbeatAt + GRACE, 'abandoned'],
    ['the pid is gone but its last heartbeat is recent (a restart in progress)', record, host(), record.heartbeatAt + GRACE - 1, 'gone'],
    ['the record is from before a reboot', record, host({ 4242: '1500' }, { bootId: 'boot-b' }), record.heartbeatAt + GRACE, 'abandoned'],
  ] as const)('%s', (_what, rec, facts, now, state) => {
    expect(judgeOwner(rec, facts, now, GRACE).state).toBe(state);
  });

  test('reads the start time from a stat line whose command holds spaces and parentheses', () => {
    const stat = '4242 (node (worker) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 1 0 0 20 0 11 0 123456 1000 100 18446744073709551615';
    expect(processStartOf(stat)).toBe('123456');
  });
});

describe('instance registry', () => {
  let dir: string;
  let proc: string;
  const clock = new ManualClock(5_000_000);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'provider-registry-'));
    proc = mkdtempSync(join(tmpdir(), 'provider-proc-'));
    mkdirSync(join(proc, 'sys/kernel/random'), { recursive: true });
    writeFileSync(join(proc, 'sys/kernel/random/boot_id'), 'boot-a\n');
    mkdirSync(join(proc, 'self/ns'), { recursive: true });
    symlinkSync('pid:[4026531836]', join(proc, 'self/ns/pid'));
    mkdirSync(join(proc, String(process.pid)));
    writeFileSync(join(proc, String(process.pid), 'stat'), `${process.pid} (node) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0`);
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(proc, { recursive: true, force: true });
  });

  test('an instance that registered is alive to others; once its process is gone and the grace has passed, abandoned', async () => {
    const mine = new InstanceRegistry({ dir, clock, log: silentLogger(), procRoot: proc });
    await mine.register('pa1', '/data');
    const other = new InstanceRegistry({ dir, clock, log: silentLogger(), procRoot: proc });
    expect((await other.judge('pa1', GRACE)).state).toBe('alive');
    // The process exits (its /proc entry goes).
    rmSync(join(proc, String(process.pid)), { recursive: true });
    expect((await other.judge('pa1', GRACE)).state).toBe('gone');
    clock.advance(GRACE);
    expect((await other.judge('pa1', GRACE)).state).toBe('abandoned');
    await other.forget('pa1');
    expect((await other.judge('pa1', GRACE)).state).toBe('unknown');
  });

  test('a heartbeat moves the start of the grace period', async () => {
    const mine = new InstanceRegistry({ dir, clock, log: silentLogger(), procRoot: proc });
    await mine.register('pa2', '/data');
    clock.advance(GRACE);
    await mine.heartbeat();
    rmSync(join(proc, String(process.pid)), { recursive: true });
    expect((await mine.judge('pa2', GRACE)).state).toBe('gone');
  });

  test('an unreadable record proves nothing', async () => {
    writeFileSync(join(dir, 'pa3.json'), '{"instanceId":');
    expect((await new InstanceRegistry({ dir, clock, log: silentLogger(), procRoot: proc }).judge('pa3', GRACE)).state).toBe('unknown');
  });
});

describe('collecting what gone instances left', () => {
  test('forgets the record of an abandoned instance that left nothing, and keeps a live one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provider-registry-'));
    try {
      const clock = new ManualClock(Date.now());
      const registry = new InstanceRegistry({ dir, clock, log: silentLogger() });
      await registry.register('plive', '/data/live');
      writeFileSync(join(dir, 'pdead.json'), JSON.stringify({ ...record, instanceId: 'pdead', bootId: 'another-boot', heartbeatAt: 0 }));
      const docker = { listNetworks: async () => [], listContainers: async () => [] } as unknown as Docker;
      const firewall = new Firewall(async () => ({ stdout: '', stderr: '' }), silentLogger(), { instanceId: 'pours' });
      const collector = new OrphanCollector({ docker, firewall, registry, clock, log: silentLogger(), graceMs: GRACE, requestTimeoutMs: 1000 });
      expect(await collector.collect()).toEqual({ networks: [], chains: [] });
      expect((await registry.ids()).sort()).toEqual(['plive']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
