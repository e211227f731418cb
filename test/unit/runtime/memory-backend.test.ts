import { MemoryBackend, parseManifest, type BackendEvent, type ExecResult, type Manifest, type MemoryProgram } from '../../../src/runtime';
import { manualClock, systemClock, type Clock } from '../../../src/util/clock';
import { aManifest } from '../../fixtures/runtime';
import { describeLeaseBackend, type ContractWorkload, type LeaseBackendFixture } from '../../contract/lease-backend.contract';

/** A memory backend whose workloads do what the contract asks of them. */
function memoryBackend(clock: Clock, options: { callTimeoutMs?: number } = {}): { backend: MemoryBackend; manifest(workload: ContractWorkload): Manifest } {
  const programs = new WeakMap<Manifest, MemoryProgram>();
  const backend = new MemoryBackend({
    clock,
    ...options,
    program: (manifest) => programs.get(manifest) ?? {},
    exec: (_runtimeId, command) => (command[0] === 'contract-exec' ? (JSON.parse(command[1] as string) as ExecResult) : { exitCode: 127, stdout: '', stderr: 'not found\n' }),
  });
  return {
    backend,
    manifest: (workload) => {
      const manifest = aManifest();
      programs.set(manifest, { ...workload });
      return manifest;
    },
  };
}

async function memoryFixture(): Promise<LeaseBackendFixture> {
  const { backend, manifest } = memoryBackend(systemClock);
  let count = 0;
  return {
    backend,
    manifest,
    runtimeId: (name) => `mem-${name}-${(count += 1)}`,
    execCommand: (result) => ['contract-exec', JSON.stringify(result)],
    unresponsive: async () => {
      const timeoutMs = 100;
      const wedged = memoryBackend(systemClock, { callTimeoutMs: timeoutMs }).backend;
      wedged.hang();
      return { backend: wedged, timeoutMs, close: async () => undefined };
    },
    cleanup: async () => undefined,
  };
}

describeLeaseBackend('MemoryBackend', memoryFixture);

describe('MemoryBackend test controls', () => {
  const idle = parseManifest({ image: 'provider-test/busybox:latest', resources: { cpuMillis: 100, memoryBytes: 2 ** 26 }, maxDurationSeconds: 60 });

  async function started(backend: MemoryBackend, runtimeId: string, manifest: Manifest = idle): Promise<void> {
    const { imageId } = await backend.prepare({ runtimeId, manifest });
    await backend.start({ manifest, allocation: { leaseId: runtimeId, cpuMillis: 100, memoryBytes: 2 ** 26, gpuUuids: [], hostPorts: [] }, imageId });
  }

  test('a hung lease holds every call until the caller aborts, or until its own timeout on the clock', async () => {
    const clock = manualClock(0);
    const backend = new MemoryBackend({ clock, callTimeoutMs: 5_000 });
    await started(backend, 'a');
    await started(backend, 'b');
    backend.hang('a');
    const status = backend.status('a').catch((err: { code: string }) => err.code);
    const controller = new AbortController();
    const counters = backend.counters('a', { signal: controller.signal }).catch((err: { code: string }) => err.code);
    expect((await backend.status('b')).running).toBe(true);
    controller.abort();
    expect(await counters).toBe('OPERATION_ABORTED');
    clock.advance(4_999);
    await Promise.resolve();
    expect(clock.pendingSleeps).toBe(1);
    clock.advance(1);
    expect(await status).toBe('BACKEND_TIMEOUT');
    backend.unhang('a');
    expect((await backend.status('a')).running).toBe(true);
  });

  test('a workload that vanishes ends its waiters with CONTAINER_NOT_FOUND and is reported exited', async () => {
    const backend = new MemoryBackend({ clock: manualClock() });
    const controller = new AbortController();
    const events: BackendEvent[] = [];
    const watching = backend.watch((e) => events.push(e), { signal: controller.signal });
    await started(backend, 'v');
    const waiting = backend.wait('v').catch((err: { code: string }) => err.code);
    backend.vanish('v');
    expect(await waiting).toBe('CONTAINER_NOT_FOUND');
    expect((await backend.reconcile(['v'])).missing).toEqual(['v']);
    backend.lose();
    backend.comeBack();
    controller.abort();
    await watching;
    expect(events).toEqual([{ kind: 'exited', runtimeId: 'v', exitCode: 137 }, { kind: 'lost' }, { kind: 'back' }]);
  });

  test('a workload exits with the code and the out-of-memory flag the test gives', async () => {
    const backend = new MemoryBackend({ clock: manualClock() });
    await started(backend, 'oom');
    backend.exit('oom', 137, { oomKilled: true });
    expect(await backend.wait('oom')).toMatchObject({ exitCode: 137, oomKilled: true, reason: 'oom-killed' });
  });

  test('a failed pull and a failed start fail once, with the error given, and leave nothing', async () => {
    const backend = new MemoryBackend({ clock: manualClock() });
    backend.failNextPull(idle.image);
    await expect(backend.prepare({ runtimeId: 'p', manifest: idle })).rejects.toMatchObject({ code: 'IMAGE_PULL_FAILED' });
    const { imageId } = await backend.prepare({ runtimeId: 'p', manifest: idle });
    backend.failNextStart('p');
    const allocation = { leaseId: 'p', cpuMillis: 100, memoryBytes: 2 ** 26, gpuUuids: [], hostPorts: [] };
    await expect(backend.start({ manifest: idle, allocation, imageId })).rejects.toMatchObject({ code: 'CONTAINER_START_FAILED' });
    expect(backend.has('p')).toEqual({ workload: false, prepared: false });
    await backend.start({ manifest: idle, allocation, imageId });
    expect(backend.has('p')).toEqual({ workload: true, prepared: true });
  });

  test('counters are what the test sets, and log lines written later reach a follower', async () => {
    const backend = new MemoryBackend({ clock: manualClock(1_000) });
    await started(backend, 'c');
    backend.setCounters('c', { cpuNanos: 5_000_000n, rxBytes: 42n });
    expect(await backend.counters('c')).toEqual({ cpuNanos: 5_000_000n, memoryBytes: 0, rxBytes: 42n, txBytes: 0n });
    const seen: string[] = [];
    const following = (async () => {
      for await (const line of backend.logs('c', { follow: true })) seen.push(`${line.stream}:${line.text}:${line.time}`);
    })();
    backend.write('c', 'stdout', 'one');
    backend.write('c', 'stderr', 'two');
    await backend.stop('c', 'requested');
    await following;
    expect(seen).toEqual(['stdout:one:1970-01-01T00:00:01.000Z', 'stderr:two:1970-01-01T00:00:01.000Z']);
  });

  test('a running guard stops a workload over its disk quota with reason disk-quota', async () => {
    const backend = new MemoryBackend({ clock: manualClock() });
    await started(backend, 'd');
    const controller = new AbortController();
    const stopped: string[] = [];
    const guarding = backend.guardLimits({ signal: controller.signal, onStopped: (id) => stopped.push(id) });
    backend.overDiskQuota('d');
    expect(stopped).toEqual(['d']);
    expect(await backend.wait('d')).toMatchObject({ reason: 'disk-quota' });
    controller.abort();
    await guarding;
  });

  test('applies the image policy it is given', async () => {
    const backend = new MemoryBackend({ clock: manualClock(), images: { allow: [], deny: ['provider-test/**'] } });
    await expect(backend.prepare({ runtimeId: 'i', manifest: idle })).rejects.toMatchObject({ code: 'IMAGE_DENIED' });
  });
});
