import type Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import { hostKernelFiles, readPidsCounters, type KernelFiles } from '../metering';
import type { Clock } from '../util/clock';
import type { Exec } from '../util/exec';
import type { ExitReason, ExitReport, PublishedPort, StopReason, WorkloadStatus } from './backend';
import { aborted, boundedCall, slowCallTimeout, type CallBounds } from './bounded-call';
import { DiskGuard } from './disk-guard';
import { containerError, engineMessage, isEngineConflict, isEngineGone, isEngineNotFound, isEngineNotModified } from './docker-errors';
import { followEvents, type RuntimeEvent } from './events';
import type { Firewall } from './firewall';
import type { ImageService } from './images';
import { inspectLease, leaseNotFound, listLeaseContainers, publishedPorts, type LeaseContainer } from './lease-containers';
import { LeaseNetwork } from './lease-network';
import { streamLogs, type LogLine, type LogOptions } from './logs';
import type { Manifest } from './manifest';
import { LABELS, assertLeaseId, containerName } from './names';
import { buildContainerSpec, nofileCeiling, type LeaseAllocation } from './spec';

export interface StartedLease {
  leaseId: string;
  containerId: string;
  ports: PublishedPort[];
  startedAt: string;
}

export interface LimitCounters {
  pidsCurrent: number | undefined;
  /** `max` of pids.events: forks refused by the pids limit. */
  pidsLimitHits: number | undefined;
}

export interface StartLeaseInput {
  manifest: Manifest;
  allocation: LeaseAllocation;
  /** Image id from ImageService.prepare (not the tag: a retag must not swap what runs). */
  imageId: string;
  signal?: AbortSignal;
  /** Longest the whole start may take (default 120 s): a wedged engine must not hang a lease. */
  timeoutMs?: number;
}

export interface LeaseRuntimeDeps {
  docker: Docker;
  firewall: Firewall;
  images?: ImageService;
  config: Pick<ProviderConfig, 'runtime' | 'gpu' | 'docker'>;
  log: Logger;
  clock: Clock;
  /** Where cgroup files are read from (tests on odd hosts can point elsewhere). */
  procRoot?: string;
  cgroupRoot?: string;
  /** Where the host's resolvers are read from when runtime.egress.dnsServers is empty. */
  resolvConfPaths?: string[];
  /** Runs `ip route` when picking lease subnets (default: the real one). */
  exec?: Exec;
}

/** Signal of the caller, for the calls that take nothing else. */
interface Signalled {
  signal?: AbortSignal | undefined;
}

/**
 * Everything the daemon does with a lease's container: network + firewall + container on start,
 * wait / stop / remove, logs, events, the disk quota, and `list()` for reconcile. Docker is the
 * truth for what runs: nothing here is needed after a restart but the containers' labels, except
 * the reason of a stop in flight, which the lease engine has already persisted. Every engine
 * request is bounded by docker.requestTimeoutMs (longer ones by their own timeouts).
 */
export class LeaseRuntime {
  private readonly stopReasons = new Map<string, StopReason>();
  private readonly pidsHits = new Map<string, number>();
  private nofile: number | undefined;
  /** Leases whose network and firewall `prepareNetwork` already set up. */
  private readonly prepared = new Set<string>();
  private readonly network: LeaseNetwork;
  private readonly kernel: KernelFiles;
  private readonly diskGuard: DiskGuard;

  constructor(private readonly deps: LeaseRuntimeDeps) {
    this.network = new LeaseNetwork(deps);
    this.kernel = hostKernelFiles(deps.procRoot, deps.cgroupRoot);
    this.diskGuard = new DiskGuard({
      list: (options) => this.list(options),
      sampleLimits: (leaseId, options) => this.sampleLimits(leaseId, options),
      stopOverQuota: (leaseId, options) => {
        this.stopReasons.set(leaseId, 'disk-quota');
        return this.stop(leaseId, 'disk-quota', options);
      },
      clock: deps.clock,
      log: deps.log,
      intervalMs: deps.config.runtime.diskCheckIntervalSeconds * 1000,
    });
  }

  private get docker(): Docker {
    return this.deps.docker;
  }

  /** An engine request's bounds: the caller's signal and docker.requestTimeoutMs. */
  private bounds(signal: AbortSignal | undefined): CallBounds {
    return { signal, timeoutMs: this.deps.config.docker.requestTimeoutMs };
  }

  private slowBounds(signal: AbortSignal | undefined): CallBounds {
    return { signal, timeoutMs: slowCallTimeout(this.deps.config.docker.requestTimeoutMs) };
  }

  /**
   * Creates the lease's network, installs its firewall rules, creates and starts its container.
   * On any failure everything created is removed again and the error says why (GPU errors as
   * NVIDIA_RUNTIME_MISSING / CDI_DEVICE_MISSING). Resolves when the container is running.
   */
  async start({ manifest, allocation, imageId, signal: callerSignal, timeoutMs = 120_000 }: StartLeaseInput): Promise<StartedLease> {
    const leaseId = assertLeaseId(allocation.leaseId);
    if (callerSignal?.aborted) throw aborted(`start of lease ${leaseId}`, callerSignal);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;
    const { runtime } = this.deps.config;
    const log = this.deps.log.child({ leaseId });
    const nofileLimit = await this.nofileCeiling();
    const spec = buildContainerSpec({ manifest, allocation, image: imageId, settings: { ...this.deps.config, runtime: { ...runtime, nofileLimit } } });
    spec.Labels = { ...spec.Labels, [LABELS.instance]: this.deps.firewall.instanceId };
    const abortable = { abortSignal: signal };
    // The start's own timeout bounds each request as well as the whole.
    const bounds = { signal, timeoutMs };
    let containerId: string | undefined;
    try {
      let container: Docker.Container;
      const create = () =>
        this.docker.createContainer({ ...spec, ...abortable } as Docker.ContainerCreateOptions).catch((err: unknown) => {
          if (isEngineConflict(err)) throw new AlreadyThere();
          throw containerError(err, 'CONTAINER_CREATE_FAILED', `could not create the container of lease ${leaseId}`, leaseId);
        });
      if (this.prepared.has(leaseId)) {
        container = await create();
      } else {
        const existed = await this.network.ensure(leaseId, bounds);
        // A retried start: when the container is there, its rules are too; leave both alone.
        if (existed && (await this.containerExists(leaseId, bounds))) throw new AlreadyThere();
        if (existed) await this.deps.firewall.remove(leaseId);
        signal.throwIfAborted();
        // Rules go in while the container is being created; it starts only once both are done.
        [container] = await Promise.all([create(), this.network.applyRules(leaseId, manifest)]);
      }
      containerId = container.id;
      signal.throwIfAborted();
      try {
        await container.start(abortable);
      } catch (err) {
        if (!isEngineNotModified(err)) throw containerError(err, 'CONTAINER_START_FAILED', `could not start the container of lease ${leaseId}`, leaseId);
      }
      this.deps.images?.touch(imageId);
      // No inspect on this path: the engine binds exactly the host ports asked or fails the start,
      // so the ports are the allocation's (`status` reads them back from the engine).
      const ports = (manifest.ports ?? []).map((p, i) => ({ containerPort: p.containerPort, protocol: p.protocol, hostPort: allocation.hostPorts[i] as number }));
      log.info({ containerId: container.id.slice(0, 12), image: manifest.image }, 'lease container running');
      return { leaseId, containerId: container.id, ports, startedAt: new Date(this.deps.clock.now()).toISOString() };
    } catch (err) {
      // A second start of the same lease (a retry after a crash) must not tear the first one down.
      if (err instanceof AlreadyThere) return this.alreadyStarted(leaseId, callerSignal);
      await this.teardown(leaseId, containerId, undefined).catch((cleanupErr: unknown) =>
        log.warn({ err: describeError(cleanupErr) }, 'cleanup after a failed start did not finish'),
      );
      if (signal.aborted) {
        const why = timeout.aborted && !callerSignal?.aborted ? `took longer than ${timeoutMs} ms` : 'was aborted';
        throw new ProviderError('OPERATION_ABORTED', `start of lease ${leaseId} ${why}`, { input: leaseId, cause: err });
      }
      if (err instanceof ProviderError) throw err;
      throw containerError(err, 'CONTAINER_START_FAILED', `could not start lease ${leaseId}`, leaseId);
    }
  }

  private async containerExists(leaseId: string, bounds: CallBounds): Promise<boolean> {
    try {
      await inspectLease(this.docker, leaseId, bounds);
      return true;
    } catch (err) {
      if (err instanceof ProviderError && err.code === 'CONTAINER_NOT_FOUND') return false;
      throw err;
    }
  }

  private async alreadyStarted(leaseId: string, signal: AbortSignal | undefined): Promise<StartedLease> {
    const info = await this.inspect(leaseId, { signal });
    if (info.Config.Labels?.[LABELS.leaseId] !== leaseId || !info.State.Running) {
      throw new ProviderError('CONTAINER_CREATE_FAILED', `lease ${leaseId} already has a container, in state ${info.State.Status}`, {
        input: leaseId,
        fix: 'remove the lease (runtime.remove) before starting it again',
      });
    }
    return { leaseId, containerId: info.Id, ports: publishedPorts(info), startedAt: info.State.StartedAt };
  }

  /**
   * Creates the lease's network and installs its firewall rules ahead of `start`, so the lease
   * engine can do it while the image is being pulled: `start` is then only create + start.
   * Idempotent; `remove` undoes it.
   */
  async prepareNetwork(leaseId: string, manifest: Manifest, signal?: AbortSignal): Promise<void> {
    assertLeaseId(leaseId);
    try {
      const existed = await this.network.ensure(leaseId, this.bounds(signal));
      if (existed && (await this.containerExists(leaseId, this.bounds(signal)))) {
        this.prepared.add(leaseId);
        return;
      }
      if (existed) await this.deps.firewall.remove(leaseId);
      await this.network.applyRules(leaseId, manifest);
      this.prepared.add(leaseId);
    } catch (err) {
      this.prepared.delete(leaseId);
      throw err;
    }
  }

  /** Resolves when the lease's container is not running, with why. Survives engine restarts. */
  async wait(leaseId: string, options: Signalled = {}): Promise<ExitReport> {
    const { signal } = options;
    const name = containerName(leaseId);
    const wasAborted = (): ProviderError => new ProviderError('OPERATION_ABORTED', `wait for lease ${leaseId} was aborted`, { input: leaseId });
    for (;;) {
      if (signal?.aborted) throw wasAborted();
      try {
        // Not bounded by a timeout: it lasts as long as the lease runs.
        await this.docker.getContainer(name).wait({ condition: 'not-running', abortSignal: signal } as object);
        return await this.exitReport(leaseId, { signal });
      } catch (err) {
        if (signal?.aborted) throw wasAborted();
        if (isEngineNotFound(err)) throw leaseNotFound(leaseId);
        if (err instanceof ProviderError) throw err;
        if (!isEngineGone(err) && !/socket hang up|aborted/i.test(describeError(err))) throw err;
        // The engine went away mid-wait (restart): wait for it and ask again.
        await this.deps.clock.sleep(500, signal).catch(() => {
          throw wasAborted();
        });
      }
    }
  }

  /** The exit of a container that is not running (or the state of one that is). */
  async exitReport(leaseId: string, options: Signalled = {}): Promise<ExitReport> {
    return this.reportOf(leaseId, await this.inspect(leaseId, options));
  }

  private reportOf(leaseId: string, info: Docker.ContainerInspectInfo): ExitReport {
    const state = info.State;
    const stopReason = this.stopReasons.get(leaseId);
    const reason: ExitReason = state.OOMKilled ? 'oom-killed' : (stopReason ?? (state.ExitCode === 0 ? 'completed' : 'failed'));
    return {
      runtimeId: leaseId,
      exitCode: state.ExitCode,
      oomKilled: state.OOMKilled,
      error: state.Error ? state.Error : undefined,
      reason,
      pidsLimitHits: this.pidsHits.get(leaseId) ?? 0,
      finishedAt: state.FinishedAt && !state.FinishedAt.startsWith('0001-') ? state.FinishedAt : undefined,
    };
  }

  /**
   * Stops a lease: SIGTERM, then SIGKILL after `timeoutSeconds` (runtime.stopTimeoutSeconds by
   * default). The reason is what `wait`/`exitReport` give. Stopping a stopped lease is fine, and
   * leaves the reason its exit already had.
   */
  async stop(leaseId: string, reason: StopReason, options: { timeoutSeconds?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (options.signal?.aborted) throw aborted(`stop of lease ${leaseId}`, options.signal);
    const seconds = options.timeoutSeconds ?? this.deps.config.runtime.stopTimeoutSeconds;
    const recorded = !this.stopReasons.has(leaseId);
    if (recorded) this.stopReasons.set(leaseId, reason);
    await this.sampleLimits(leaseId, options).catch(() => undefined);
    try {
      // The engine does the TERM, wait, KILL sequence; its HTTP call lasts up to `seconds`, plus the kill.
      await boundedCall(`stop of lease ${leaseId}`, { signal: options.signal, timeoutMs: (seconds + 30) * 1000 }, (abortSignal) =>
        this.docker.getContainer(containerName(leaseId)).stop({ t: seconds, abortSignal } as object),
      );
    } catch (err) {
      if (isEngineNotModified(err)) {
        // It had ended by itself: its exit is its own.
        if (recorded) this.stopReasons.delete(leaseId);
        return;
      }
      if (isEngineNotFound(err)) throw leaseNotFound(leaseId);
      if (err instanceof ProviderError) throw err;
      throw new ProviderError('CONTAINER_STOP_FAILED', `could not stop lease ${leaseId}: ${engineMessage(err)}`, { input: leaseId, cause: err });
    }
    this.deps.log.info({ leaseId, reason }, 'lease container stopped');
  }

  /** Removes the container (killing it if needed), the network and the firewall rules. Idempotent. */
  async remove(leaseId: string, options: Signalled = {}): Promise<void> {
    if (options.signal?.aborted) throw aborted(`remove of lease ${leaseId}`, options.signal);
    await this.teardown(assertLeaseId(leaseId), undefined, options.signal);
    this.stopReasons.delete(leaseId);
    this.pidsHits.delete(leaseId);
  }

  /** The lease's container as the engine sees it now: state, published ports, exit. */
  async status(leaseId: string, options: Signalled = {}): Promise<WorkloadStatus> {
    const info = await this.inspect(leaseId, options);
    const running = info.State.Running;
    return {
      running,
      state: info.State.Status,
      ports: publishedPorts(info),
      exit: running ? undefined : this.reportOf(leaseId, info),
      startedAt: info.State.StartedAt,
    };
  }

  /** Our containers (this instance's), from their labels: the truth after a daemon restart. */
  list(options: { size?: boolean; signal?: AbortSignal; adopt?: ReadonlySet<string> } = {}): Promise<LeaseContainer[]> {
    const bounds = options.size === true ? this.slowBounds(options.signal) : this.bounds(options.signal);
    return listLeaseContainers(this.docker, bounds, { ...options, instanceId: this.deps.firewall.instanceId });
  }

  /**
   * Our containers against the leases the store says exist: `orphans` are containers no lease owns
   * (the lease engine decides their fate), `missing` are leases whose container is gone. Firewall
   * chains and networks of leases that have neither are removed (what a crash left behind), and
   * the rules of running leases are reinstalled when they are missing. Run it at start and on
   * every `engine-back` event.
   */
  async reconcile(knownLeaseIds: readonly string[], options: Signalled = {}): Promise<{ adopted: LeaseContainer[]; orphans: LeaseContainer[]; missing: string[] }> {
    const known = new Set(knownLeaseIds);
    // Another instance's containers are not listed; ours from before instances only when known.
    const containers = await this.list({ signal: options.signal, adopt: known });
    const adopted = containers.filter((c) => known.has(c.leaseId));
    const orphans = containers.filter((c) => !known.has(c.leaseId));
    const present = new Set(containers.map((c) => c.leaseId));
    const missing = knownLeaseIds.filter((id) => !present.has(id));
    // Rules and networks of known leases stay even without a container (a lease still pulling).
    const keep = new Set([...present, ...knownLeaseIds, ...this.prepared]);
    await this.network.reconcile(containers, keep, this.bounds(options.signal));
    if (orphans.length > 0) this.deps.log.warn({ orphans: orphans.map((o) => o.leaseId) }, 'containers of ours that no lease owns');
    return { adopted, orphans, missing };
  }

  inspect(leaseId: string, options: Signalled = {}): Promise<Docker.ContainerInspectInfo> {
    return inspectLease(this.docker, leaseId, this.bounds(options.signal));
  }

  /** Lines of the lease's stdout/stderr; see streamLogs for follow across engine restarts. */
  logs(leaseId: string, options: LogOptions = {}): AsyncGenerator<LogLine> {
    const { docker, clock, log } = this.deps;
    return streamLogs(docker, containerName(leaseId), options, { log: log.child({ leaseId }), clock, requestTimeoutMs: this.deps.config.docker.requestTimeoutMs });
  }

  /** Follows engine events for our containers until the signal aborts; see followEvents. */
  followEvents(onEvent: (event: RuntimeEvent) => void, options: { signal: AbortSignal; onSubscribed?: () => void }): Promise<void> {
    const { log, clock, config } = this.deps;
    return followEvents(this.docker, onEvent, { ...options, log, clock, requestTimeoutMs: config.docker.requestTimeoutMs, instanceId: this.deps.firewall.instanceId });
  }

  /**
   * Reads the lease's pids cgroup: how many tasks, and how many forks the limit refused.
   * Undefined fields when the container is not running.
   */
  async sampleLimits(leaseId: string, options: Signalled = {}): Promise<LimitCounters> {
    const info = await this.inspect(leaseId, options);
    if (!info.State.Running || !info.State.Pid) return { pidsCurrent: undefined, pidsLimitHits: this.pidsHits.get(leaseId) };
    const { current, limitHits } = await readPidsCounters(this.kernel, info.State.Pid);
    if (limitHits !== undefined) this.pidsHits.set(leaseId, Math.max(limitHits, this.pidsHits.get(leaseId) ?? 0));
    return { pidsCurrent: current, pidsLimitHits: limitHits };
  }

  /** One pass of the disk quota; returns the leases it stopped (see DiskGuard). */
  enforceDiskQuota(signal?: AbortSignal): Promise<string[]> {
    return this.diskGuard.enforce(signal);
  }

  /** Runs enforceDiskQuota every runtime.diskCheckIntervalSeconds until the signal aborts. */
  watchDisk(options: { signal: AbortSignal; onStopped?: (leaseId: string) => void }): Promise<void> {
    return this.diskGuard.watch(options);
  }

  private async nofileCeiling(): Promise<number> {
    this.nofile ??= await nofileCeiling(this.deps.config.runtime.nofileLimit, this.deps.procRoot ?? '/proc', this.deps.log);
    return this.nofile;
  }

  private async teardown(leaseId: string, containerId: string | undefined, signal: AbortSignal | undefined): Promise<void> {
    this.prepared.delete(leaseId);
    const target = containerId ?? containerName(leaseId);
    try {
      await boundedCall(`removing the container of lease ${leaseId}`, this.slowBounds(signal), (abortSignal) =>
        this.docker.getContainer(target).remove({ force: true, v: true, abortSignal }),
      );
    } catch (err) {
      if (!isEngineNotFound(err) && !/removal of container .* is already in progress/i.test(engineMessage(err))) throw err;
    }
    await this.network.remove(leaseId, this.bounds(signal));
    await this.deps.firewall.remove(leaseId);
  }
}

/** The lease's container name is taken: by this lease's own container on a retried start. */
class AlreadyThere extends Error {}
