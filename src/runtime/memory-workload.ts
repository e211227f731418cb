import { PassThrough } from 'node:stream';
import type { ExecResult, ExecSession, ExitReport, ObservedWorkload, PublishedPort, StartedWorkload, StopReason, WorkloadCounters } from './backend';
import type { LogLine } from './logs';

/** A workload of the in-memory backend: a record its test controls change. */
export interface Workload {
  runtimeId: string;
  handle: string;
  running: boolean;
  ports: PublishedPort[];
  startedAt: string;
  exitCode: number;
  oomKilled: boolean;
  stopReason: StopReason | undefined;
  finishedAt: string | undefined;
  logs: LogLine[];
  counters: WorkloadCounters;
  /** Removed: waiters and followers end. */
  gone: boolean;
  /** Called on every change (an exit, a line, removal): wait and follow sleep on them. */
  wakers: Set<() => void>;
}

export const ZERO_COUNTERS: WorkloadCounters = { cpuNanos: 0n, memoryBytes: 0, rxBytes: 0n, txBytes: 0n };

export function wake(workload: Workload): void {
  const wakers = [...workload.wakers];
  workload.wakers.clear();
  for (const waker of wakers) waker();
}

export function started(workload: Workload): StartedWorkload {
  return { runtimeId: workload.runtimeId, handle: workload.handle, ports: workload.ports.map((p) => ({ ...p })), startedAt: workload.startedAt };
}

export function report(workload: Workload): ExitReport {
  return {
    runtimeId: workload.runtimeId,
    exitCode: workload.exitCode,
    oomKilled: workload.oomKilled,
    error: undefined,
    reason: workload.oomKilled ? 'oom-killed' : (workload.stopReason ?? (workload.exitCode === 0 ? 'completed' : 'failed')),
    pidsLimitHits: 0,
    finishedAt: workload.finishedAt,
  };
}

export function observed(workload: Workload): ObservedWorkload {
  return { runtimeId: workload.runtimeId, handle: workload.handle, running: workload.running, state: workload.running ? 'running' : 'exited' };
}

/**
 * An in-memory session: the exec answer's output, then its exit code. With a tty the two streams
 * are one, as a terminal shows them.
 */
export function execSession(result: ExecResult, tty: boolean): ExecSession {
  const stdin = new PassThrough();
  stdin.resume();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.end(tty ? result.stdout + result.stderr : result.stdout);
  stderr.end(tty ? '' : result.stderr);
  return { stdin, stdout, stderr, exit: Promise.resolve(result.exitCode), resize: async () => undefined, close: () => stdin.destroy() };
}
