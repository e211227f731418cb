import { createHash } from 'node:crypto';
import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import type {
  BackendEvent,
  ExecResult,
  ExecSession,
  ExecSessionInput,
  ExitReport,
  LeaseBackend,
  PrepareInput,
  PreparedWorkload,
  ReconcileResult,
  Signalled,
  StartInput,
  StartedWorkload,
  StopReason,
  WorkloadCounters,
  WorkloadStatus,
} from './backend';
import { aborted, backendTimeout } from './bounded-call';
import { checkImagePolicy, type ImagePolicy } from './image-policy';
import { leaseNotFound } from './lease-containers';
import type { LogLine, LogOptions } from './logs';
import type { Manifest } from './manifest';
import { ZERO_COUNTERS, execSession, observed, report, started, wake, type Workload } from './memory-workload';
import { assertLeaseId } from './names';

/** What a started workload does, as the test that starts it decides. */
export interface MemoryProgram {
  /** Lines it writes as it starts, in order. */
  lines?: { stream: 'stdout' | 'stderr'; text: string }[];
  /** When given, it exits by itself with this code once it has written its lines. */
  exitCode?: number;
}

export interface MemoryBackendOptions {
  clock: Clock;
  /** The program of a workload, by its manifest; by default it writes nothing and runs until stopped. */
  program?: (manifest: Manifest) => MemoryProgram;
  /** Answers `exec`; by default every command is not found (127). */
  exec?: (runtimeId: string, command: readonly string[]) => ExecResult;
  /** admission.images; by default every image but a bare image id is allowed. */
  images?: ImagePolicy;
  /** This backend's own bound on a call that hangs, on its clock (default 30 s). */
  callTimeoutMs?: number;
  /** Whether it keeps an ended workload's counters (`finalCounters`), as a backend that can does (default true). */
  keepsFinalCounters?: boolean;
}

const SIGTERM_EXIT = 143;
const SIGKILL_EXIT = 137;

/**
 * The lease backend in memory, for the engine's unit tests: workloads are records, nothing runs and
 * nothing touches the host. It keeps the contract the Docker backend keeps (the same suite runs
 * against both), and its test controls make happen what an engine does on its own: a workload
 * exits or vanishes, a call hangs (until the caller's signal aborts, or this backend's timeout on
 * its clock passes), a pull or a start fails, counters move, the engine is lost and comes back.
 */
export class MemoryBackend implements LeaseBackend {
  private readonly workloads = new Map<string, Workload>();
  /** Leases prepared (their "network" set up) and not removed. */
  private readonly prepared = new Set<string>();
  private readonly images = new Set<string>();
  private readonly hung = new Set<string>();
  private allHung = false;
  private readonly pullFailures = new Map<string, Error>();
  private readonly startFailures = new Map<string, Error>();
  private readonly watchers = new Set<(event: BackendEvent) => void>();
  private readonly guards = new Set<(runtimeId: string) => void>();
  private handles = 0;

  constructor(private readonly options: MemoryBackendOptions) {}

  async ping(options: Signalled = {}): Promise<void> {
    await this.gate('ping', undefined, options.signal);
  }

  async prepare({ runtimeId, manifest, signal }: PrepareInput): Promise<PreparedWorkload> {
    await this.gate(`prepare of lease ${runtimeId}`, runtimeId, signal);
    assertLeaseId(runtimeId);
    checkImagePolicy(manifest.image, this.options.images ?? { allow: [], deny: [] });
    const failure = this.pullFailures.get(manifest.image);
    this.pullFailures.delete(manifest.image);
    if (failure) throw failure;
    const imageId = `sha256:${createHash('sha256').update(manifest.image).digest('hex')}`;
    this.images.add(imageId);
    this.prepared.add(runtimeId);
    return { imageId, digest: imageId };
  }

  async start({ manifest, allocation, imageId, signal }: StartInput): Promise<StartedWorkload> {
    const runtimeId = assertLeaseId(allocation.leaseId);
    await this.gate(`start of lease ${runtimeId}`, runtimeId, signal);
    const existing = this.workloads.get(runtimeId);
    if (existing?.running) return started(existing);
    if (existing) throw new ProviderError('CONTAINER_CREATE_FAILED', `lease ${runtimeId} already has a workload, which has ended`, { input: runtimeId });
    const failure = this.startFailures.get(runtimeId);
    this.startFailures.delete(runtimeId);
    if (failure) {
      this.prepared.delete(runtimeId);
      throw failure;
    }
    if (!this.images.has(imageId)) throw new ProviderError('CONTAINER_CREATE_FAILED', `could not create lease ${runtimeId}: no such image ${imageId}`, { input: runtimeId });
    this.handles += 1;
    const workload: Workload = {
      runtimeId,
      handle: `memory-${this.handles}`,
      running: true,
      ports: (manifest.ports ?? []).map((p, i) => ({ containerPort: p.containerPort, protocol: p.protocol, hostPort: allocation.hostPorts[i] as number })),
      startedAt: new Date(this.options.clock.now()).toISOString(),
      exitCode: 0,
      oomKilled: false,
      stopReason: undefined,
      finishedAt: undefined,
      logs: [],
      counters: { ...ZERO_COUNTERS },
      gone: false,
      wakers: new Set(),
    };
    this.workloads.set(runtimeId, workload);
    // A start without a prepare sets up what prepare would have, as the Docker backend's does.
    this.prepared.add(runtimeId);
    const program = this.options.program?.(manifest) ?? {};
    for (const line of program.lines ?? []) this.append(workload, line.stream, line.text);
    const exitCode = program.exitCode;
    // After a turn, as a process exits after its start: the caller can still see it start.
    if (exitCode !== undefined) setImmediate(() => workload.running && this.end(workload, exitCode));
    return started(workload);
  }

  async stop(runtimeId: string, reason: StopReason, options: Signalled = {}): Promise<void> {
    await this.gate(`stop of lease ${runtimeId}`, runtimeId, options.signal);
    const workload = this.existing(runtimeId);
    // Stopping an ended workload leaves the exit it had.
    if (!workload.running) return;
    workload.stopReason = reason;
    this.end(workload, SIGTERM_EXIT);
  }

  async wait(runtimeId: string, options: Signalled = {}): Promise<ExitReport> {
    const what = `wait for lease ${runtimeId}`;
    // Not bounded by the backend's timeout: a wait lasts as long as the workload runs.
    await this.gate(what, runtimeId, options.signal, false);
    const workload = this.existing(runtimeId);
    while (workload.running && !workload.gone) await this.nextChange(workload, what, options.signal);
    if (workload.gone) throw leaseNotFound(runtimeId);
    return report(workload);
  }

  async status(runtimeId: string, options: Signalled = {}): Promise<WorkloadStatus> {
    await this.gate(`status of lease ${runtimeId}`, runtimeId, options.signal);
    const workload = this.existing(runtimeId);
    return {
      running: workload.running,
      state: workload.running ? 'running' : 'exited',
      ports: workload.ports.map((p) => ({ ...p })),
      exit: workload.running ? undefined : report(workload),
      startedAt: workload.startedAt,
    };
  }

  async *logs(runtimeId: string, options: LogOptions = {}): AsyncGenerator<LogLine> {
    const { signal } = options;
    await this.gate(`logs of lease ${runtimeId}`, runtimeId, signal);
    const workload = this.existing(runtimeId);
    const since = options.since;
    let lines = workload.logs.filter((line) => since === undefined || Date.parse(line.time) / 1000 >= since);
    if (options.tail !== undefined) lines = options.tail === 0 ? [] : lines.slice(-options.tail);
    yield* lines.map((line) => ({ ...line }));
    let seen = workload.logs.length;
    while (options.follow === true && workload.running && !workload.gone && !signal?.aborted) {
      // A follow ends quietly when its reader goes, as the Docker log stream does.
      if (!(await this.nextChange(workload, 'log follow', signal).then(() => true, () => false))) return;
      yield* workload.logs.slice(seen).map((line) => ({ ...line }));
      seen = workload.logs.length;
    }
  }

  async exec(runtimeId: string, command: string[], options: Signalled = {}): Promise<ExecResult> {
    await this.gate(`exec in lease ${runtimeId}`, runtimeId, options.signal);
    const workload = this.existing(runtimeId);
    if (!workload.running) throw new ProviderError('CONTAINER_NOT_RUNNING', `lease ${runtimeId} is not running`, { input: runtimeId });
    return this.options.exec?.(runtimeId, command) ?? { exitCode: 127, stdout: '', stderr: `${command[0] ?? ''}: not found\n` };
  }

  async openExec(runtimeId: string, input: ExecSessionInput): Promise<ExecSession> {
    return execSession(await this.exec(runtimeId, input.command, { signal: input.signal }), input.tty);
  }

  async address(runtimeId: string, options: Signalled = {}): Promise<string> {
    await this.gate(`address of lease ${runtimeId}`, runtimeId, options.signal);
    if (!this.existing(runtimeId).running) throw new ProviderError('CONTAINER_NOT_RUNNING', `lease ${runtimeId} is not running`, { input: runtimeId });
    // A documentation address (RFC 5737): nothing in memory listens, and nothing must be dialled.
    return '192.0.2.1';
  }

  async counters(runtimeId: string, options: Signalled = {}): Promise<WorkloadCounters | undefined> {
    await this.gate(`counters of lease ${runtimeId}`, runtimeId, options.signal);
    const workload = this.existing(runtimeId);
    return workload.running ? { ...workload.counters } : undefined;
  }

  async finalCounters(runtimeId: string, options: Signalled = {}): Promise<WorkloadCounters | undefined> {
    await this.gate(`final counters of lease ${runtimeId}`, runtimeId, options.signal);
    const workload = this.existing(runtimeId);
    if (workload.running || this.options.keepsFinalCounters === false) return undefined;
    return { ...workload.counters, memoryBytes: 0 };
  }

  async reconcile(knownRuntimeIds: readonly string[], options: Signalled = {}): Promise<ReconcileResult> {
    await this.gate('reconcile', undefined, options.signal);
    const known = new Set(knownRuntimeIds);
    const all = [...this.workloads.values()];
    // What a crash left of leases no one knows (their "networks") goes.
    for (const runtimeId of this.prepared) if (!known.has(runtimeId) && !this.workloads.has(runtimeId)) this.prepared.delete(runtimeId);
    return {
      adopted: all.filter((w) => known.has(w.runtimeId)).map(observed),
      orphans: all.filter((w) => !known.has(w.runtimeId)).map(observed),
      missing: knownRuntimeIds.filter((id) => !this.workloads.has(id)),
    };
  }

  async remove(runtimeId: string, options: Signalled = {}): Promise<void> {
    await this.gate(`remove of lease ${runtimeId}`, runtimeId, options.signal);
    this.discard(assertLeaseId(runtimeId));
  }

  async guardLimits(options: { signal: AbortSignal; onStopped: (runtimeId: string) => void }): Promise<void> {
    await this.until(options.signal, this.guards, options.onStopped);
  }

  async watch(onEvent: (event: BackendEvent) => void, options: { signal: AbortSignal }): Promise<void> {
    await this.until(options.signal, this.watchers, onEvent);
  }

  // Test controls: what an engine does on its own.

  /** The workload exits by itself. */
  exit(runtimeId: string, exitCode: number, options: { oomKilled?: boolean } = {}): void {
    const workload = this.existing(runtimeId);
    if (!workload.running) return;
    workload.oomKilled = options.oomKilled === true;
    this.end(workload, exitCode);
  }

  /** The workload is removed under the backend (someone ran `docker rm -f`). */
  vanish(runtimeId: string): void {
    this.discard(runtimeId);
  }

  /** Every call on the lease (on every lease, without an id) blocks from now on. */
  hang(runtimeId?: string): void {
    if (runtimeId === undefined) this.allHung = true;
    else this.hung.add(runtimeId);
  }

  /** Calls answer again (new ones; those blocked stay blocked). */
  unhang(runtimeId?: string): void {
    if (runtimeId === undefined) this.allHung = false;
    else this.hung.delete(runtimeId);
  }

  failNextPull(image: string, error: Error = new ProviderError('IMAGE_PULL_FAILED', `could not pull ${image}`, { input: image })): void {
    this.pullFailures.set(image, error);
  }

  failNextStart(runtimeId: string, error: Error = new ProviderError('CONTAINER_START_FAILED', `could not start lease ${runtimeId}`, { input: runtimeId })): void {
    this.startFailures.set(runtimeId, error);
  }

  /** The workload's counters move (after it ended too: what it used after the last sample). */
  setCounters(runtimeId: string, counters: Partial<WorkloadCounters>): void {
    const workload = this.existing(runtimeId);
    workload.counters = { ...workload.counters, ...counters };
  }

  write(runtimeId: string, stream: 'stdout' | 'stderr', text: string): void {
    this.append(this.existing(runtimeId), stream, text);
  }

  /** The workload outgrows its disk quota: a guard that runs stops it. */
  overDiskQuota(runtimeId: string): void {
    const workload = this.existing(runtimeId);
    if (!workload.running || this.guards.size === 0) return;
    workload.stopReason = 'disk-quota';
    this.end(workload, SIGTERM_EXIT);
    for (const onStopped of this.guards) onStopped(runtimeId);
  }

  /** The engine stops answering its event stream, and later comes back. */
  lose(): void {
    this.emit({ kind: 'lost' });
  }

  comeBack(): void {
    this.emit({ kind: 'back' });
  }

  /** Whether the lease has a workload (running or not), or was prepared. */
  has(runtimeId: string): { workload: boolean; prepared: boolean } {
    return { workload: this.workloads.has(runtimeId), prepared: this.prepared.has(runtimeId) };
  }

  private existing(runtimeId: string): Workload {
    const workload = this.workloads.get(runtimeId);
    if (!workload) throw leaseNotFound(runtimeId);
    return workload;
  }

  private append(workload: Workload, stream: 'stdout' | 'stderr', text: string): void {
    workload.logs.push({ stream, time: new Date(this.options.clock.now()).toISOString(), text });
    wake(workload);
  }

  private end(workload: Workload, exitCode: number): void {
    workload.running = false;
    workload.exitCode = exitCode;
    workload.finishedAt = new Date(this.options.clock.now()).toISOString();
    wake(workload);
    this.emit({ kind: 'exited', runtimeId: workload.runtimeId, exitCode });
  }

  private discard(runtimeId: string): void {
    const workload = this.workloads.get(runtimeId);
    if (workload?.running) this.end(workload, SIGKILL_EXIT);
    if (workload) {
      workload.gone = true;
      wake(workload);
    }
    this.workloads.delete(runtimeId);
    this.prepared.delete(runtimeId);
  }

  private emit(event: BackendEvent): void {
    for (const watcher of this.watchers) watcher(event);
  }

  /** Holds `member` in `set` until the signal aborts. */
  private until<T>(signal: AbortSignal, set: Set<T>, member: T): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    set.add(member);
    return new Promise((resolve) =>
      signal.addEventListener('abort', () => {
        set.delete(member);
        resolve();
      }, { once: true }),
    );
  }

  private nextChange(workload: Workload, what: string, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(aborted(what, signal));
      const onAbort = (): void => {
        workload.wakers.delete(waker);
        reject(aborted(what, signal as AbortSignal));
      };
      const waker = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      workload.wakers.add(waker);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Every call passes here: an aborted signal fails it at once; a hung lease holds it until the
   * caller's signal aborts or, when `bounded`, this backend's timeout passes on its clock.
   */
  private async gate(what: string, runtimeId: string | undefined, signal: AbortSignal | undefined, bounded = true): Promise<void> {
    if (signal?.aborted) throw aborted(what, signal);
    if (!this.allHung && (runtimeId === undefined || !this.hung.has(runtimeId))) return;
    const timeoutMs = this.options.callTimeoutMs ?? 30_000;
    const stopTimer = new AbortController();
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<never>((_, reject) => {
        onAbort = () => reject(aborted(what, signal as AbortSignal));
        signal?.addEventListener('abort', onAbort, { once: true });
        if (bounded) this.options.clock.sleep(timeoutMs, stopTimer.signal).then(() => reject(backendTimeout(what, timeoutMs)), () => undefined);
      });
    } finally {
      stopTimer.abort();
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }
}
