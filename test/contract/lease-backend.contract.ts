import { isProviderError, type ErrorCode } from '../../src/errors';
import type { BackendEvent, ExecResult, LeaseAllocation, LeaseBackend, LogLine, Manifest, StartedWorkload } from '../../src/runtime';
import { until } from '../support/until';

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** What a contract test asks a workload to do; each adapter's fixture makes it so. */
export interface ContractWorkload {
  /** Lines it writes as it starts, in order. */
  lines?: { stream: 'stdout' | 'stderr'; text: string }[];
  /** When given, it exits by itself with this code after its lines; otherwise it runs until stopped. */
  exitCode?: number;
}

export interface LeaseBackendFixture {
  backend: LeaseBackend;
  /** A runtime id no other test uses; `cleanup` removes what it leaves. */
  runtimeId(name: string): string;
  manifest(workload: ContractWorkload): Manifest;
  /** A command for exec that writes `stdout` and `stderr` (plain words and newlines) and exits with `exitCode`. */
  execCommand(result: ExecResult): string[];
  /** A backend of the same adapter whose engine never answers, with its own timeout of `timeoutMs`. */
  unresponsive(): Promise<{ backend: LeaseBackend; timeoutMs: number; close(): Promise<void> }>;
  cleanup(): Promise<void>;
}

/**
 * The behaviour every LeaseBackend adapter has, as one suite each adapter's test runs with its
 * own fixture: what the lease engine may count on, whatever runs its leases.
 */
export function describeLeaseBackend(name: string, makeFixture: () => Promise<LeaseBackendFixture>): void {
  describe(`${name} keeps the lease backend contract`, () => {
    let fx: LeaseBackendFixture;
    let backend: LeaseBackend;

    beforeAll(async () => {
      fx = await makeFixture();
      backend = fx.backend;
    });
    afterAll(() => fx.cleanup());

    function allocation(runtimeId: string, manifest: Manifest): LeaseAllocation {
      return { leaseId: runtimeId, cpuMillis: manifest.resources.cpuMillis, memoryBytes: manifest.resources.memoryBytes, gpuUuids: [], hostPorts: [] };
    }

    /** Prepares and starts a workload doing `workload`. */
    async function run(label: string, workload: ContractWorkload = {}): Promise<{ runtimeId: string; manifest: Manifest; started: StartedWorkload; imageId: string }> {
      const runtimeId = fx.runtimeId(label);
      const manifest = fx.manifest(workload);
      const { imageId } = await backend.prepare({ runtimeId, manifest });
      const started = await backend.start({ manifest, allocation: allocation(runtimeId, manifest), imageId });
      return { runtimeId, manifest, started, imageId };
    }

    async function code(promise: Promise<unknown>): Promise<ErrorCode | 'resolved'> {
      try {
        await promise;
        return 'resolved';
      } catch (err) {
        if (isProviderError(err)) return err.code;
        throw err;
      }
    }

    async function collect(lines: AsyncGenerator<LogLine>): Promise<LogLine[]> {
      const out: LogLine[] = [];
      for await (const line of lines) out.push(line);
      return out;
    }

    test('answers a ping', async () => {
      expect(await code(backend.ping())).toBe('resolved');
    });

    test('prepares and starts a workload, which is then running', async () => {
      const runtimeId = fx.runtimeId('start');
      const manifest = fx.manifest({});
      const prepared = await backend.prepare({ runtimeId, manifest });
      expect(prepared.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(prepared.digest).not.toBe('');
      const started = await backend.start({ manifest, allocation: allocation(runtimeId, manifest), imageId: prepared.imageId });
      expect(started).toMatchObject({ runtimeId, ports: [] });
      expect(started.handle).not.toBe('');
      expect(Number.isNaN(Date.parse(started.startedAt))).toBe(false);
      const status = await backend.status(runtimeId);
      expect(status).toMatchObject({ running: true, state: 'running', ports: [], exit: undefined });
    });

    test('a second start of a running workload returns the first and leaves it running', async () => {
      const { runtimeId, manifest, started, imageId } = await run('twice');
      const again = await backend.start({ manifest, allocation: allocation(runtimeId, manifest), imageId });
      expect(again.handle).toBe(started.handle);
      expect((await backend.status(runtimeId)).running).toBe(true);
    });

    test('stop, then wait, gives the reason of the stop', async () => {
      const { runtimeId } = await run('stop');
      await backend.stop(runtimeId, 'tenant-closed');
      const exit = await backend.wait(runtimeId);
      expect(exit).toMatchObject({ runtimeId, reason: 'tenant-closed', oomKilled: false });
      const status = await backend.status(runtimeId);
      expect(status.running).toBe(false);
      expect(status.exit).toMatchObject({ reason: 'tenant-closed' });
      await backend.stop(runtimeId, 'requested'); // stopping a stopped workload is fine
      expect((await backend.wait(runtimeId)).reason).toBe('tenant-closed');
    });

    test('a workload that exits by itself reports its exit code, and a later stop leaves that exit', async () => {
      const failed = await run('exit3', { exitCode: 3 });
      const completed = await run('exit0', { exitCode: 0 });
      expect(await backend.wait(failed.runtimeId)).toMatchObject({ runtimeId: failed.runtimeId, exitCode: 3, reason: 'failed', oomKilled: false });
      expect(await backend.wait(completed.runtimeId)).toMatchObject({ exitCode: 0, reason: 'completed' });
      await backend.stop(failed.runtimeId, 'max-duration');
      expect(await backend.wait(failed.runtimeId)).toMatchObject({ exitCode: 3, reason: 'failed' });
      expect((await backend.wait(failed.runtimeId)).finishedAt).toEqual(expect.any(String));
    });

    test('gives its logs in order, by stream, with tail and follow', async () => {
      const lines = [
        { stream: 'stdout' as const, text: 'first line' },
        { stream: 'stdout' as const, text: 'second line' },
        { stream: 'stderr' as const, text: 'a complaint' },
        { stream: 'stdout' as const, text: 'third line' },
      ];
      // The engine stamps stdout and stderr in a goroutine each: "a complaint" may be stamped before
      // "third line" yet written to the log after it, and must still be given (CI lost it before).
      const { runtimeId } = await run('logs', { lines });
      const all = await until('all four lines', async () => {
        const seen = await collect(backend.logs(runtimeId));
        return seen.length >= lines.length ? seen : undefined;
      }, 15_000, 100);
      // stdout and stderr are separate pipes: order is kept within a stream.
      expect(all.filter((l) => l.stream === 'stdout').map((l) => l.text)).toEqual(['first line', 'second line', 'third line']);
      expect(all.filter((l) => l.stream === 'stderr').map((l) => l.text)).toEqual(['a complaint']);
      for (const line of all) expect(Number.isNaN(Date.parse(line.time))).toBe(false);
      // The last line of the whole log, whichever stream it came on.
      expect(await collect(backend.logs(runtimeId, { tail: 1 }))).toEqual([all[all.length - 1]]);
      // After the workload stops, the same log; a follow ends with it.
      await backend.stop(runtimeId, 'requested');
      await backend.wait(runtimeId);
      expect(await collect(backend.logs(runtimeId, { follow: true }))).toEqual(all);
    });

    test('follows the logs of a running workload until the signal aborts', async () => {
      const { runtimeId } = await run('follow', { lines: [{ stream: 'stdout', text: 'hello' }] });
      const controller = new AbortController();
      const seen: string[] = [];
      const following = (async () => {
        for await (const line of backend.logs(runtimeId, { follow: true, signal: controller.signal })) seen.push(line.text);
      })();
      await until('the line', () => seen.includes('hello'), 15_000, 50);
      controller.abort();
      await following;
      expect(seen).toEqual(['hello']);
    });

    test('runs a command in a running workload: its output and exit code', async () => {
      const { runtimeId } = await run('exec');
      const result = await backend.exec(runtimeId, fx.execCommand({ exitCode: 4, stdout: 'out here\n', stderr: 'err here\n' }));
      expect(result).toEqual({ exitCode: 4, stdout: 'out here\n', stderr: 'err here\n' });
      expect((await backend.exec(runtimeId, fx.execCommand({ exitCode: 0, stdout: 'ok\n', stderr: '' }))).exitCode).toBe(0);
      await backend.stop(runtimeId, 'requested');
      await backend.wait(runtimeId);
      expect(await code(backend.exec(runtimeId, fx.execCommand({ exitCode: 0, stdout: '', stderr: '' })))).toBe('CONTAINER_NOT_RUNNING');
    });

    test('opens a session in a running workload: its output, its exit code, an address while it runs', async () => {
      const { runtimeId } = await run('session');
      const piped = await backend.openExec(runtimeId, { command: fx.execCommand({ exitCode: 3, stdout: 'out here\n', stderr: 'err here\n' }), tty: false });
      const [stdout, stderr] = await Promise.all([text(piped.stdout), text(piped.stderr)]);
      expect({ stdout, stderr, exitCode: await piped.exit }).toEqual({ stdout: 'out here\n', stderr: 'err here\n', exitCode: 3 });
      const terminal = await backend.openExec(runtimeId, { command: fx.execCommand({ exitCode: 0, stdout: 'on a tty\n', stderr: '' }), tty: true, size: { cols: 100, rows: 30 } });
      await terminal.resize({ cols: 120, rows: 40 }).catch(() => undefined);
      expect((await text(terminal.stdout)).replace(/\r\n/g, '\n')).toBe('on a tty\n');
      expect(await terminal.exit).toBe(0);
      expect(await backend.address(runtimeId)).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      await backend.stop(runtimeId, 'requested');
      await backend.wait(runtimeId);
      expect(await code(backend.openExec(runtimeId, { command: fx.execCommand({ exitCode: 0, stdout: '', stderr: '' }), tty: false }))).toBe('CONTAINER_NOT_RUNNING');
      expect(await code(backend.address(runtimeId))).toBe('CONTAINER_NOT_RUNNING');
    });

    test('has counters while it runs and none once it has stopped', async () => {
      const { runtimeId } = await run('counters');
      const counters = await backend.counters(runtimeId);
      expect(counters).toEqual({ cpuNanos: expect.any(BigInt), memoryBytes: expect.any(Number), rxBytes: expect.any(BigInt), txBytes: expect.any(BigInt) });
      expect(counters!.cpuNanos).toBeGreaterThanOrEqual(0n);
      await backend.stop(runtimeId, 'requested');
      await backend.wait(runtimeId);
      expect(await backend.counters(runtimeId)).toBeUndefined();
    });

    test('keeps the final counters of a workload that ended until it is removed: none while it runs, no memory held', async () => {
      const { runtimeId } = await run('final');
      expect(await backend.finalCounters(runtimeId)).toBeUndefined();
      const last = await backend.counters(runtimeId);
      await backend.stop(runtimeId, 'requested');
      await backend.wait(runtimeId);
      const final = await backend.finalCounters(runtimeId);
      // A backend that keeps none says so with undefined; one that keeps them has counted at least what it read last.
      if (final !== undefined) {
        expect(final).toEqual({ cpuNanos: expect.any(BigInt), memoryBytes: 0, rxBytes: expect.any(BigInt), txBytes: expect.any(BigInt) });
        expect(final.cpuNanos).toBeGreaterThanOrEqual(last!.cpuNanos);
        expect(final.txBytes).toBeGreaterThanOrEqual(last!.txBytes);
        expect(await backend.finalCounters(runtimeId)).toEqual(final);
      }
      await backend.remove(runtimeId);
      expect(await code(backend.finalCounters(runtimeId))).toBe('CONTAINER_NOT_FOUND');
    });

    test('reconcile adopts the known, reports the orphans and the missing', async () => {
      const known = await run('known');
      const orphan = await run('orphan');
      const missing = fx.runtimeId('missing');
      const result = await backend.reconcile([known.runtimeId, missing]);
      expect(result.adopted).toEqual([{ runtimeId: known.runtimeId, handle: known.started.handle, running: true, state: 'running' }]);
      expect(result.orphans).toContainEqual({ runtimeId: orphan.runtimeId, handle: orphan.started.handle, running: true, state: 'running' });
      expect(result.orphans.map((o) => o.runtimeId)).not.toContain(known.runtimeId);
      expect(result.missing).toEqual([missing]);
    });

    test('remove takes everything away, and is idempotent', async () => {
      const { runtimeId } = await run('remove');
      await backend.remove(runtimeId);
      expect(await code(backend.status(runtimeId))).toBe('CONTAINER_NOT_FOUND');
      await backend.remove(runtimeId);
      expect((await backend.reconcile([runtimeId])).missing).toEqual([runtimeId]);
    });

    test('calls on a lease that has nothing fail with CONTAINER_NOT_FOUND', async () => {
      const ghost = fx.runtimeId('ghost');
      expect(await code(backend.status(ghost))).toBe('CONTAINER_NOT_FOUND');
      expect(await code(backend.stop(ghost, 'requested'))).toBe('CONTAINER_NOT_FOUND');
      expect(await code(backend.wait(ghost))).toBe('CONTAINER_NOT_FOUND');
      expect(await code(backend.exec(ghost, fx.execCommand({ exitCode: 0, stdout: '', stderr: '' })))).toBe('CONTAINER_NOT_FOUND');
      expect(await code(backend.counters(ghost))).toBe('CONTAINER_NOT_FOUND');
      expect(await code(backend.finalCounters(ghost))).toBe('CONTAINER_NOT_FOUND');
      expect(await code(collect(backend.logs(ghost)))).toBe('CONTAINER_NOT_FOUND');
      expect(await code(backend.remove(ghost))).toBe('resolved');
    });

    test('a signal already aborted rejects every call with OPERATION_ABORTED', async () => {
      const { runtimeId, manifest, imageId } = await run('aborted');
      const signal = AbortSignal.abort();
      const calls: [string, () => Promise<unknown>][] = [
        ['prepare', () => backend.prepare({ runtimeId: fx.runtimeId('aborted-prepare'), manifest, signal })],
        ['start', () => backend.start({ manifest, allocation: allocation(fx.runtimeId('aborted-start'), manifest), imageId, signal })],
        ['stop', () => backend.stop(runtimeId, 'requested', { signal })],
        ['wait', () => backend.wait(runtimeId, { signal })],
        ['status', () => backend.status(runtimeId, { signal })],
        ['exec', () => backend.exec(runtimeId, fx.execCommand({ exitCode: 0, stdout: '', stderr: '' }), { signal })],
        ['counters', () => backend.counters(runtimeId, { signal })],
        ['finalCounters', () => backend.finalCounters(runtimeId, { signal })],
        ['reconcile', () => backend.reconcile([runtimeId], { signal })],
        ['remove', () => backend.remove(runtimeId, { signal })],
      ];
      for (const [what, call] of calls) expect([what, await code(call())]).toEqual([what, 'OPERATION_ABORTED']);
      expect((await backend.status(runtimeId)).running).toBe(true);
    });

    test('a wait ends with OPERATION_ABORTED when its signal aborts', async () => {
      const { runtimeId } = await run('wait-abort');
      const controller = new AbortController();
      const waiting = code(backend.wait(runtimeId, { signal: controller.signal }));
      setTimeout(() => controller.abort(), 100);
      expect(await waiting).toBe('OPERATION_ABORTED');
      expect((await backend.status(runtimeId)).running).toBe(true);
    });

    test('watch reports a workload that exits, with its runtime id and exit code', async () => {
      const controller = new AbortController();
      const events: BackendEvent[] = [];
      const watching = backend.watch((event) => events.push(event), { signal: controller.signal });
      const { runtimeId } = await run('watched', { lines: [{ stream: 'stdout', text: 'soon' }], exitCode: 5 });
      await until('the exit event', () => events.find((e) => e.kind === 'exited' && e.runtimeId === runtimeId), 15_000, 50);
      controller.abort();
      await watching;
      expect(events.filter((e) => e.kind === 'exited' && e.runtimeId === runtimeId)).toEqual([{ kind: 'exited', runtimeId, exitCode: 5 }]);
    });

    test('prepare refuses a bare image id with IMAGE_DENIED', async () => {
      const manifest = { ...fx.manifest({}), image: `sha256:${'ab'.repeat(32)}` };
      expect(await code(backend.prepare({ runtimeId: fx.runtimeId('image-id'), manifest }))).toBe('IMAGE_DENIED');
    });

    test('a backend that does not answer fails calls with BACKEND_TIMEOUT in bounded time; a wait lasts until its signal', async () => {
      const wedged = await fx.unresponsive();
      try {
        const runtimeId = fx.runtimeId('wedged');
        for (const call of [() => wedged.backend.ping(), () => wedged.backend.status(runtimeId), () => wedged.backend.counters(runtimeId), () => wedged.backend.reconcile([runtimeId])]) {
          const started = Date.now();
          expect(await code(call())).toBe('BACKEND_TIMEOUT');
          expect(Date.now() - started).toBeLessThan(wedged.timeoutMs + 2_000);
        }
        const controller = new AbortController();
        setTimeout(() => controller.abort(), wedged.timeoutMs * 2);
        expect(await code(wedged.backend.wait(runtimeId, { signal: controller.signal }))).toBe('OPERATION_ABORTED');
      } finally {
        await wedged.close();
      }
    });
  });
}
