import type { Readable, Writable } from 'node:stream';
import type { PullProgress } from './images';
import type { LogLine, LogOptions } from './logs';
import type { Manifest, RegistryAuth } from './manifest';
import type { LeaseAllocation } from './spec';

/**
 * The lease backend port: everything the lease engine (and the API) asks of whatever runs a
 * lease's workload. Docker is one adapter (`DockerBackend`); `MemoryBackend` is another, for the
 * engine's unit tests; one contract suite (test/contract/lease-backend.contract.ts) holds both to
 * the same behaviour. Nothing here names an engine type: a lease is known by its `runtimeId`
 * (unique per data dir), never by a container id or a host pid.
 *
 * Every call that waits takes an `AbortSignal` and is bounded by a timeout of its own as well, so
 * a wedged engine fails the call (OPERATION_ABORTED / BACKEND_TIMEOUT) instead of holding a lease
 * forever. A lease that has nothing under it fails with CONTAINER_NOT_FOUND.
 */

export type StopReason = 'requested' | 'max-duration' | 'disk-quota' | 'escrow-empty' | 'tenant-closed' | 'drain' | 'failed';

/** Why a lease's workload is no longer running. */
export type ExitReason = 'completed' | 'failed' | 'oom-killed' | StopReason;

export interface PublishedPort {
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostPort: number;
}

export interface PreparedWorkload {
  /** What `start` runs (an image id: a retag between prepare and start must not swap it). */
  imageId: string;
  /** The content digest the tenant can check (repo@sha256:…, or the image id for a local image). */
  digest: string;
}

export interface StartedWorkload {
  runtimeId: string;
  /** The backend's own handle for what runs (a container id); shown to people, never used as a key. */
  handle: string;
  ports: PublishedPort[];
  /** ISO time the backend started it. */
  startedAt: string;
}

export interface ExitReport {
  runtimeId: string;
  exitCode: number;
  oomKilled: boolean;
  /** The backend's error text when the workload could not run. */
  error: string | undefined;
  reason: ExitReason;
  /** Times the pids limit refused a fork, as last sampled (fork bombs). */
  pidsLimitHits: number;
  /** ISO time it stopped, when known. */
  finishedAt: string | undefined;
}

export interface WorkloadStatus {
  running: boolean;
  /** The backend's word for it (created, running, exited…), for people. */
  state: string;
  ports: PublishedPort[];
  exit: ExitReport | undefined;
  startedAt: string;
}

/** A running workload's cumulative counters since it started (what metering differences). */
export interface WorkloadCounters {
  cpuNanos: bigint;
  memoryBytes: number;
  rxBytes: bigint;
  txBytes: bigint;
}

export interface ObservedWorkload {
  runtimeId: string;
  handle: string;
  running: boolean;
  state: string;
}

export interface ReconcileResult {
  /** Known leases that have a workload (running or not). */
  adopted: ObservedWorkload[];
  /** Workloads of ours that no known lease owns. */
  orphans: ObservedWorkload[];
  /** Known leases with nothing under them. */
  missing: string[];
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface TerminalSize {
  cols: number;
  rows: number;
}

export interface ExecSessionInput extends Signalled {
  command: string[];
  /** A terminal: stdout and stderr arrive as one stream, and `resize` applies. */
  tty: boolean;
  /** The terminal's size from the start (tty only). */
  size?: TerminalSize;
}

/**
 * An interactive process inside a running workload (a tenant's shell). It runs in the workload's
 * own limits (pids, memory, CPU): it is one more process of the workload, not a neighbour.
 */
export interface ExecSession {
  /** What the process reads; ending it sends end-of-file. */
  stdin: Writable;
  /** With a tty, everything the terminal shows; else the process's stdout. */
  stdout: Readable;
  /** Empty and ended with a tty. */
  stderr: Readable;
  /** Resizes the terminal (tty only; ignored otherwise). */
  resize(size: TerminalSize, options?: Signalled): Promise<void>;
  /** The exit code, once the process has ended and its output is read. */
  exit: Promise<number>;
  /**
   * Stops listening and hangs the terminal up: a shell dies of the hangup; what ignores it runs on
   * until it ends (the engine has no call to kill one exec) or the workload stops.
   */
  close(): void;
}

export type BackendEvent =
  | { kind: 'exited'; runtimeId: string; exitCode: number | undefined }
  /** The backend stopped answering. */
  | { kind: 'lost' }
  /** It answers again: what ran may have changed underneath; reconcile now. */
  | { kind: 'back' };

export interface Signalled {
  signal?: AbortSignal;
}

export interface PrepareInput extends Signalled {
  runtimeId: string;
  manifest: Manifest;
  registryAuth?: RegistryAuth;
  onProgress?: (progress: PullProgress) => void;
}

export interface StartInput extends Signalled {
  manifest: Manifest;
  allocation: LeaseAllocation;
  /** From `prepare`. */
  imageId: string;
}

export interface LeaseBackend {
  /** Resolves when the backend answers (the operator's status shows it); BACKEND_TIMEOUT otherwise. */
  ping(options?: Signalled): Promise<void>;
  /** Fetches what the workload needs (the image) and sets up its network; idempotent. */
  prepare(input: PrepareInput): Promise<PreparedWorkload>;
  /** Starts the workload; a second start of a running lease returns the first. */
  start(input: StartInput): Promise<StartedWorkload>;
  /** TERM, then KILL after the backend's stop timeout; stopping a stopped lease is fine and leaves the exit it had. */
  stop(runtimeId: string, reason: StopReason, options?: Signalled): Promise<void>;
  /** Resolves when the workload is not running, with why; survives a backend restart. */
  wait(runtimeId: string, options?: Signalled): Promise<ExitReport>;
  /** How it stands now. */
  status(runtimeId: string, options?: Signalled): Promise<WorkloadStatus>;
  /** Its stdout and stderr lines, in order within each stream; CONTAINER_NOT_FOUND (not an empty log) when there is nothing. */
  logs(runtimeId: string, options?: LogOptions): AsyncGenerator<LogLine>;
  /** Runs a command inside the running workload and collects its output; CONTAINER_NOT_RUNNING once it has stopped. */
  exec(runtimeId: string, command: string[], options?: Signalled): Promise<ExecResult>;
  /**
   * Starts an interactive process inside the running workload (stdin attached, a tty if asked);
   * CONTAINER_NOT_RUNNING once it has stopped. Opening is bounded; the session lasts until it ends or is closed.
   */
  openExec(runtimeId: string, input: ExecSessionInput): Promise<ExecSession>;
  /**
   * The running workload's address on its own lease network: what the API's port proxy and
   * tunnels connect to, and nothing else. CONTAINER_NOT_RUNNING when it has none.
   */
  address(runtimeId: string, options?: Signalled): Promise<string>;
  /** The running workload's counters, or undefined when it is not running. */
  counters(runtimeId: string, options?: Signalled): Promise<WorkloadCounters | undefined>;
  /**
   * The counters of a workload that has ended, as they stood at its end: what it used after the
   * last `counters` read included, and memory 0 (it holds none). Kept until `remove`. Undefined
   * while it still runs, and where the backend kept none (a workload it started before it kept
   * them, a host where it cannot): then only the samples taken while it ran are known.
   */
  finalCounters(runtimeId: string, options?: Signalled): Promise<WorkloadCounters | undefined>;
  /** What runs against what the store knows; cleans up what no known lease owns. */
  reconcile(knownRuntimeIds: readonly string[], options?: Signalled): Promise<ReconcileResult>;
  /** Removes everything the lease had (killing it if needed); idempotent. */
  remove(runtimeId: string, options?: Signalled): Promise<void>;
  /**
   * Enforces the backend's own limits (the disk quota) until the signal aborts; calls
   * `onStopped` for each lease it stopped.
   */
  guardLimits(options: { signal: AbortSignal; onStopped: (runtimeId: string) => void }): Promise<void>;
  /** Follows what happens to our workloads until the signal aborts. */
  watch(onEvent: (event: BackendEvent) => void, options: { signal: AbortSignal }): Promise<void>;
}
