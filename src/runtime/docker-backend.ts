import type Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import type { Logger } from '../log';
import { hostKernelFiles, type KernelFiles } from '../metering';
import type { Clock } from '../util/clock';
import type {
  BackendEvent,
  ExecResult,
  ExecSession,
  ExecSessionInput,
  ExitReport,
  LeaseBackend,
  ObservedWorkload,
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
import { aborted, boundedCall } from './bounded-call';
import { DockerLeaseCounters, type PidCounterReader } from './docker-counters';
import { execInLease } from './docker-exec';
import { leaseAddressOf, openExecSession } from './docker-exec-session';
import type { ImageService } from './images';
import type { LeaseContainer } from './lease-containers';
import type { LeaseRuntime } from './lease-runtime';
import { leaseLogs, type LogLine, type LogOptions } from './logs';
import { assertLeaseId, networkName } from './names';

export type { PidCounterReader } from './docker-counters';

export interface DockerBackendDeps {
  docker: Docker;
  runtime: LeaseRuntime;
  images: ImageService;
  counters: PidCounterReader;
  /** Where the lease cgroups and bridges are read (default: this host's /proc, /sys/fs/cgroup, /sys/class/net). */
  kernel?: KernelFiles;
  config: Pick<ProviderConfig, 'docker' | 'metering'>;
  clock: Clock;
  log: Logger;
  /** Longest an exec may run (default 60 s). */
  execTimeoutMs?: number;
}

/**
 * The lease backend on a Docker engine: a lease's workload is a container named after its runtime
 * id, on a bridge network of its own behind its own firewall chains (LeaseRuntime), from an image
 * ImageService admitted and pulled. Counters come from the lease's own parent cgroup and bridge,
 * which outlive the container (DockerLeaseCounters), so no pid leaves this adapter.
 */
export class DockerBackend implements LeaseBackend {
  private readonly meter: DockerLeaseCounters;

  constructor(private readonly deps: DockerBackendDeps) {
    this.meter = new DockerLeaseCounters({
      docker: deps.docker,
      inspect: (runtimeId, options) => deps.runtime.inspect(runtimeId, options),
      pids: deps.counters,
      kernel: deps.kernel ?? hostKernelFiles(),
      config: deps.config,
      log: deps.log,
    });
  }

  async ping(options: Signalled = {}): Promise<void> {
    await boundedCall('ping of the container engine', { signal: options.signal, timeoutMs: this.deps.config.docker.requestTimeoutMs }, (signal) =>
      (this.deps.docker.ping as (options: object) => Promise<unknown>).call(this.deps.docker, { abortSignal: signal }),
    );
  }

  async prepare({ runtimeId, manifest, registryAuth, onProgress, signal }: PrepareInput): Promise<PreparedWorkload> {
    assertLeaseId(runtimeId);
    if (signal?.aborted) throw aborted(`prepare of lease ${runtimeId}`, signal);
    const { images, runtime } = this.deps;
    // The pull and the network set-up are independent: the lease waits for the longer of the two.
    const [image] = await Promise.all([
      images.prepare(manifest.image, { registryAuth: registryAuth ?? manifest.registryAuth, signal, onProgress }),
      runtime.prepareNetwork(runtimeId, manifest, signal),
    ]);
    return { imageId: image.id, digest: image.digest };
  }

  async start({ manifest, allocation, imageId, signal }: StartInput): Promise<StartedWorkload> {
    const metering = await this.meter.startOptions(assertLeaseId(allocation.leaseId), { signal });
    const started = await this.deps.runtime.start({ manifest, allocation, imageId, metering, signal });
    return { runtimeId: started.leaseId, handle: started.containerId, ports: started.ports, startedAt: started.startedAt };
  }

  stop(runtimeId: string, reason: StopReason, options: Signalled = {}): Promise<void> {
    return this.deps.runtime.stop(runtimeId, reason, { signal: options.signal });
  }

  wait(runtimeId: string, options: Signalled = {}): Promise<ExitReport> {
    return this.deps.runtime.wait(runtimeId, options);
  }

  status(runtimeId: string, options: Signalled = {}): Promise<WorkloadStatus> {
    return this.deps.runtime.status(runtimeId, options);
  }

  logs(runtimeId: string, options: LogOptions = {}): AsyncGenerator<LogLine> {
    const { docker, clock, log, config } = this.deps;
    return leaseLogs(docker, runtimeId, options, { log, clock, requestTimeoutMs: config.docker.requestTimeoutMs });
  }

  exec(runtimeId: string, command: string[], options: Signalled = {}): Promise<ExecResult> {
    const bounds = { signal: options.signal, timeoutMs: this.deps.execTimeoutMs ?? 60_000 };
    return execInLease(this.deps.docker, assertLeaseId(runtimeId), command, bounds, this.deps.clock);
  }

  openExec(runtimeId: string, input: ExecSessionInput): Promise<ExecSession> {
    const bounds = { signal: input.signal, timeoutMs: this.deps.config.docker.requestTimeoutMs };
    return openExecSession(this.deps.docker, assertLeaseId(runtimeId), input, bounds, this.deps.clock);
  }

  async address(runtimeId: string, options: Signalled = {}): Promise<string> {
    return leaseAddressOf(await this.deps.runtime.inspect(assertLeaseId(runtimeId), options), runtimeId, networkName(runtimeId));
  }

  counters(runtimeId: string, options: Signalled = {}): Promise<WorkloadCounters | undefined> {
    return this.meter.running(runtimeId, options);
  }

  finalCounters(runtimeId: string, options: Signalled = {}): Promise<WorkloadCounters | undefined> {
    return this.meter.final(runtimeId, options);
  }

  async reconcile(knownRuntimeIds: readonly string[], options: Signalled = {}): Promise<ReconcileResult> {
    const { adopted, orphans, missing } = await this.deps.runtime.reconcile(knownRuntimeIds, options);
    const keep = new Set([...knownRuntimeIds, ...adopted.map((c) => c.leaseId), ...orphans.map((c) => c.leaseId)]);
    await this.meter.collect((runtimeId) => keep.has(runtimeId), options);
    return { adopted: adopted.map(observed), orphans: orphans.map(observed), missing };
  }

  async remove(runtimeId: string, options: Signalled = {}): Promise<void> {
    await this.deps.runtime.remove(runtimeId, options);
    await this.meter.remove(runtimeId, options);
  }

  guardLimits(options: { signal: AbortSignal; onStopped: (runtimeId: string) => void }): Promise<void> {
    return this.deps.runtime.watchDisk(options);
  }

  watch(onEvent: (event: BackendEvent) => void, options: { signal: AbortSignal }): Promise<void> {
    return this.deps.runtime.followEvents((event) => {
      if (event.kind === 'engine-lost') onEvent({ kind: 'lost' });
      else if (event.kind === 'engine-back') onEvent({ kind: 'back' });
      else if (event.action === 'die') onEvent({ kind: 'exited', runtimeId: event.leaseId, exitCode: event.exitCode });
    }, options);
  }
}

function observed(container: LeaseContainer): ObservedWorkload {
  return { runtimeId: container.leaseId, handle: container.containerId, running: container.running, state: container.state };
}
