import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { containerError, engineMessage, isEngineConflict, isEngineGone, isEngineNotFound, isEngineNotModified } from './docker-errors';
import { followEvents, type RuntimeEvent } from './events';
import type { Firewall, LeaseFirewallSpec } from './firewall';
import type { ImageService } from './images';
import { streamLogs, type LogLine, type LogOptions } from './logs';
import type { Manifest } from './manifest';
import { LABELS, assertLeaseId, bridgeName, containerName, leaseChains, networkName } from './names';
import { buildContainerSpec, type LeaseAllocation } from './spec';
import { sleep } from '../util/sleep';

export type StopReason = 'requested' | 'max-duration' | 'disk-quota' | 'escrow-empty' | 'tenant-closed' | 'drain' | 'failed';

/** Why a lease's container is no longer running. */
export type ExitReason = 'completed' | 'failed' | 'oom-killed' | StopReason;

export interface PublishedPort {
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostPort: number;
}

export interface StartedLease {
  leaseId: string;
  containerId: string;
  ports: PublishedPort[];
  startedAt: string;
}

export interface ExitReport {
  leaseId: string;
  exitCode: number;
  oomKilled: boolean;
  /** The engine's error text when the container could not run. */
  error: string | undefined;
  reason: ExitReason;
  /** Times the pids limit refused a fork, as last sampled (fork bombs). */
  pidsLimitHits: number;
  finishedAt: string | undefined;
}

export interface LeaseContainer {
  leaseId: string;
  containerId: string;
  state: string;
  running: boolean;
  image: string;
  diskBytes: number | undefined;
  sizeRwBytes: number | undefined;
  egress: 'public' | 'none';
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
  config: Pick<ProviderConfig, 'runtime' | 'gpu'>;
  log: Logger;
  clock: Clock;
  /** Where cgroup files are read from (tests on odd hosts can point elsewhere). */
  procRoot?: string;
  cgroupRoot?: string;
  /** Where the host's resolvers are read from when runtime.egress.dnsServers is empty. */
  resolvConfPaths?: string[];
}

const MANAGED_FILTER = { label: [`${LABELS.managed}=true`] };

/**
 * Everything the daemon does with a lease's container: network + firewall + container on start,
 * wait / stop / remove, logs, events, the disk quota, and `list()` for reconcile. Docker is the
 * truth for what runs: nothing here is needed after a restart but the containers' labels, except
 * the reason of a stop in flight, which the lease engine has already persisted.
 */
export class LeaseRuntime {
  private readonly stopReasons = new Map<string, StopReason>();
  private readonly pidsHits = new Map<string, number>();
  private nofile: number | undefined;
  /** Leases whose network and firewall `prepareNetwork` already set up. */
  private readonly prepared = new Set<string>();
  private resolvers: string[] | undefined;

  constructor(private readonly deps: LeaseRuntimeDeps) {}

  private get docker(): Docker {
    return this.deps.docker;
  }

  /**
   * Creates the lease's network, installs its firewall rules, creates and starts its container.
   * On any failure everything created is removed again and the error says why (GPU errors as
   * NVIDIA_RUNTIME_MISSING / CDI_DEVICE_MISSING). Resolves when the container is running.
   */
  async start({ manifest, allocation, imageId, signal: callerSignal, timeoutMs = 120_000 }: StartLeaseInput): Promise<StartedLease> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout;
    const leaseId = assertLeaseId(allocation.leaseId);
    const { runtime } = this.deps.config;
    const log = this.deps.log.child({ leaseId });
    const nofileLimit = await this.nofileCeiling();
    const spec = buildContainerSpec({ manifest, allocation, image: imageId, settings: { ...this.deps.config, runtime: { ...runtime, nofileLimit } } });
    const bridge = bridgeName(leaseId);
    const abortable = { abortSignal: signal };
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
        const existed = await this.ensureNetwork(leaseId, bridge, signal);
        // A retried start: when the container is there, its rules are too; leave both alone.
        if (existed && (await this.containerExists(leaseId))) throw new AlreadyThere();
        if (existed) await this.deps.firewall.remove(leaseId);
        signal?.throwIfAborted();
        // Rules go in while the container is being created; it starts only once both are done.
        const rules = await this.firewallSpec(leaseId, manifest);
        [container] = await Promise.all([create(), this.deps.firewall.apply(rules)]);
      }
      containerId = container.id;
      signal?.throwIfAborted();
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
      if (err instanceof AlreadyThere) return this.alreadyStarted(leaseId);
      await this.teardown(leaseId, containerId).catch((cleanupErr: unknown) =>
        log.warn({ err: describeError(cleanupErr) }, 'cleanup after a failed start did not finish'),
      );
      if (err instanceof ProviderError) throw err;
      if (signal.aborted) {
        const why = timeout.aborted && !callerSignal?.aborted ? `took longer than ${timeoutMs} ms` : 'was aborted';
        throw new ProviderError('OPERATION_ABORTED', `start of lease ${leaseId} ${why}`, { input: leaseId, cause: err });
      }
      throw containerError(err, 'CONTAINER_START_FAILED', `could not start lease ${leaseId}`, leaseId);
    }
  }

  private async containerExists(leaseId: string): Promise<boolean> {
    try {
      await this.docker.getContainer(containerName(leaseId)).inspect();
      return true;
    } catch (err) {
      if (isEngineNotFound(err)) return false;
      throw err;
    }
  }

  private async alreadyStarted(leaseId: string): Promise<StartedLease> {
    const info = await this.inspect(leaseId);
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
      const existed = await this.ensureNetwork(leaseId, bridgeName(leaseId), signal);
      if (existed && (await this.containerExists(leaseId))) {
        this.prepared.add(leaseId);
        return;
      }
      if (existed) await this.deps.firewall.remove(leaseId);
      await this.deps.firewall.apply(await this.firewallSpec(leaseId, manifest));
      this.prepared.add(leaseId);
    } catch (err) {
      this.prepared.delete(leaseId);
      throw err;
    }
  }

  private async firewallSpec(leaseId: string, manifest: Pick<Manifest, 'egress'>): Promise<LeaseFirewallSpec> {
    const { runtime } = this.deps.config;
    return {
      leaseId,
      bridge: bridgeName(leaseId),
      publicEgress: runtime.egress.public && manifest.egress !== 'none',
      allowCidrs: runtime.egress.allowCidrs,
      dnsServers: await this.leaseResolvers(),
    };
  }

  /**
   * The resolvers the engine's embedded DNS forwards lease queries to: runtime.egress.dnsServers,
   * or the host's. Docker reads systemd-resolved's upstream list when /etc/resolv.conf points at
   * 127.0.0.53, and skips loopback ones (it dials those from the host, not the lease).
   */
  private async leaseResolvers(): Promise<string[]> {
    if (this.resolvers !== undefined) return this.resolvers;
    const configured = this.deps.config.runtime.egress.dnsServers;
    let servers = [...configured];
    if (servers.length === 0) {
      for (const path of this.deps.resolvConfPaths ?? ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']) {
        const text = await readFile(path, 'utf8').catch(() => '');
        for (const m of text.matchAll(/^\s*nameserver\s+([0-9a-fA-F:.]+)(?:%\S+)?\s*$/gm)) {
          const ip = m[1] as string;
          if (!/^127\./.test(ip) && ip !== '::1' && !servers.includes(ip)) servers.push(ip);
        }
      }
    }
    servers = servers.slice(0, 8);
    this.resolvers = servers;
    return servers;
  }

  /** Resolves when the lease's container is not running, with why. Survives engine restarts. */
  async wait(leaseId: string, options: { signal?: AbortSignal } = {}): Promise<ExitReport> {
    const name = containerName(leaseId);
    for (;;) {
      options.signal?.throwIfAborted();
      try {
        await this.docker.getContainer(name).wait({ condition: 'not-running', abortSignal: options.signal } as object);
        return await this.exitReport(leaseId);
      } catch (err) {
        if (options.signal?.aborted) throw new ProviderError('OPERATION_ABORTED', `wait for lease ${leaseId} was aborted`, { input: leaseId });
        if (isEngineNotFound(err)) throw notFound(leaseId);
        if (!isEngineGone(err) && !/socket hang up|aborted/i.test(describeError(err))) throw err;
        // The engine went away mid-wait (restart): wait for it and ask again.
        await sleep(500, options.signal).catch(() => {
          throw new ProviderError('OPERATION_ABORTED', `wait for lease ${leaseId} was aborted`, { input: leaseId });
        });
      }
    }
  }

  /** The exit of a container that is not running (or the state of one that is). */
  async exitReport(leaseId: string): Promise<ExitReport> {
    const info = await this.inspect(leaseId);
    const state = info.State;
    const stopReason = this.stopReasons.get(leaseId);
    const reason: ExitReason = state.OOMKilled ? 'oom-killed' : (stopReason ?? (state.ExitCode === 0 ? 'completed' : 'failed'));
    return {
      leaseId,
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
   * default). The reason is what `wait`/`exitReport` give. Stopping a stopped lease is fine.
   */
  async stop(leaseId: string, reason: StopReason, options: { timeoutSeconds?: number; signal?: AbortSignal } = {}): Promise<void> {
    const seconds = options.timeoutSeconds ?? this.deps.config.runtime.stopTimeoutSeconds;
    if (!this.stopReasons.has(leaseId)) this.stopReasons.set(leaseId, reason);
    await this.sampleLimits(leaseId).catch(() => undefined);
    // The engine does the TERM, wait, KILL sequence; its HTTP call lasts up to `seconds`, plus the kill.
    const timeout = AbortSignal.timeout((seconds + 30) * 1000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      await this.docker.getContainer(containerName(leaseId)).stop({ t: seconds, abortSignal: signal } as object);
    } catch (err) {
      if (isEngineNotModified(err)) return;
      if (isEngineNotFound(err)) throw notFound(leaseId);
      throw new ProviderError('CONTAINER_STOP_FAILED', `could not stop lease ${leaseId}: ${engineMessage(err)}`, { input: leaseId, cause: err });
    }
    this.deps.log.info({ leaseId, reason }, 'lease container stopped');
  }

  /** Removes the container (killing it if needed), the network and the firewall rules. Idempotent. */
  async remove(leaseId: string): Promise<void> {
    await this.teardown(assertLeaseId(leaseId), undefined);
    this.stopReasons.delete(leaseId);
    this.pidsHits.delete(leaseId);
  }

  /** The lease's container as the engine sees it now: state, published ports, exit. */
  async status(leaseId: string): Promise<{ running: boolean; state: string; ports: PublishedPort[]; exit: ExitReport | undefined; startedAt: string }> {
    const info = await this.inspect(leaseId);
    const running = info.State.Running;
    return {
      running,
      state: info.State.Status,
      ports: publishedPorts(info),
      exit: running ? undefined : await this.exitReport(leaseId),
      startedAt: info.State.StartedAt,
    };
  }

  /** Our containers, from their labels: the truth after a daemon restart. */
  async list(options: { size?: boolean } = {}): Promise<LeaseContainer[]> {
    const containers = await this.docker.listContainers({ all: true, size: options.size === true, filters: JSON.stringify(MANAGED_FILTER) });
    return containers
      .filter((c) => c.Labels?.[LABELS.leaseId] !== undefined)
      .map((c) => {
        const disk = c.Labels[LABELS.diskBytes];
        return {
          leaseId: c.Labels[LABELS.leaseId] as string,
          containerId: c.Id,
          state: c.State,
          running: c.State === 'running',
          image: c.Labels[LABELS.image] ?? c.Image,
          diskBytes: disk === undefined ? undefined : Number(disk),
          egress: c.Labels[LABELS.egress] === 'none' ? ('none' as const) : ('public' as const),
          sizeRwBytes: (c as { SizeRw?: number }).SizeRw,
        };
      });
  }

  /**
   * Our containers against the leases the store says exist: `orphans` are containers no lease owns
   * (the lease engine decides their fate), `missing` are leases whose container is gone. Firewall
   * chains and networks of leases that have neither are removed (what a crash left behind), and
   * the rules of running leases are reinstalled when they are missing. Run it at start and on
   * every `engine-back` event.
   */
  async reconcile(knownLeaseIds: readonly string[]): Promise<{ adopted: LeaseContainer[]; orphans: LeaseContainer[]; missing: string[] }> {
    const containers = await this.list();
    const known = new Set(knownLeaseIds);
    const adopted = containers.filter((c) => known.has(c.leaseId));
    const orphans = containers.filter((c) => !known.has(c.leaseId));
    const present = new Set(containers.map((c) => c.leaseId));
    const missing = knownLeaseIds.filter((id) => !present.has(id));
    // Rules and networks of known leases stay even without a container (a lease still pulling).
    const keep = new Set([...present, ...knownLeaseIds, ...this.prepared]);
    await this.deps.firewall.removeStale([...keep]);
    // Rules that vanished under a running lease (a firewall reload flushing tables) come back.
    const chains = new Set(await this.deps.firewall.leaseChainsPresent());
    for (const c of containers) {
      if (!c.running || chains.has(leaseChains(c.leaseId).forward)) continue;
      this.deps.log.warn({ leaseId: c.leaseId }, 'firewall rules of a running lease were missing; reinstalling them');
      await this.deps.firewall.apply(await this.firewallSpec(c.leaseId, { egress: c.egress }));
    }
    const networks = await this.docker.listNetworks({ filters: JSON.stringify(MANAGED_FILTER) });
    for (const network of networks) {
      const owner = network.Labels?.[LABELS.leaseId];
      if (owner === undefined || keep.has(owner)) continue;
      await this.docker
        .getNetwork(network.Id)
        .remove()
        .then(() => this.deps.log.info({ leaseId: owner }, 'removed the network of a lease that no longer exists'))
        .catch((err: unknown) => this.deps.log.warn({ leaseId: owner, err: engineMessage(err) }, 'could not remove a stale lease network'));
    }
    if (orphans.length > 0) this.deps.log.warn({ orphans: orphans.map((o) => o.leaseId) }, 'containers of ours that no lease owns');
    return { adopted, orphans, missing };
  }

  async inspect(leaseId: string): Promise<Docker.ContainerInspectInfo> {
    try {
      return await this.docker.getContainer(containerName(leaseId)).inspect();
    } catch (err) {
      if (isEngineNotFound(err)) throw notFound(leaseId);
      throw new ProviderError('DOCKER_REQUEST_FAILED', `could not inspect lease ${leaseId}: ${engineMessage(err)}`, { input: leaseId, cause: err });
    }
  }

  /** Lines of the lease's stdout/stderr; see streamLogs for follow across engine restarts. */
  logs(leaseId: string, options: LogOptions = {}): AsyncGenerator<LogLine> {
    return streamLogs(this.docker, containerName(leaseId), options, this.deps.log.child({ leaseId }));
  }

  /** Follows engine events for our containers until the signal aborts; see followEvents. */
  followEvents(onEvent: (event: RuntimeEvent) => void, options: { signal: AbortSignal; onSubscribed?: () => void }): Promise<void> {
    return followEvents(this.docker, onEvent, { ...options, log: this.deps.log, now: () => this.deps.clock.now() });
  }

  /**
   * Reads the lease's pids cgroup: how many tasks, and how many forks the limit refused. Found
   * through /proc/<pid>/cgroup of the container's init, so it works with either cgroup driver
   * and cgroup v1 or v2. Undefined fields when the container is not running.
   */
  async sampleLimits(leaseId: string): Promise<LimitCounters> {
    const info = await this.inspect(leaseId);
    if (!info.State.Running || !info.State.Pid) return { pidsCurrent: undefined, pidsLimitHits: this.pidsHits.get(leaseId) };
    const procRoot = this.deps.procRoot ?? '/proc';
    const cgroupRoot = this.deps.cgroupRoot ?? '/sys/fs/cgroup';
    const lines = (await readFile(`${procRoot}/${info.State.Pid}/cgroup`, 'utf8')).split('\n');
    const v1 = lines.map((l) => l.split(':')).find((parts) => (parts[1] ?? '').split(',').includes('pids'));
    const v2 = lines.map((l) => l.split(':')).find((parts) => parts[0] === '0' && parts[1] === '');
    const dir = v1 ? `${cgroupRoot}/pids${v1[2]}` : v2 ? `${cgroupRoot}${v2[2]}` : undefined;
    if (dir === undefined) return { pidsCurrent: undefined, pidsLimitHits: undefined };
    const current = Number((await readFile(`${dir}/pids.current`, 'utf8').catch(() => '')).trim()) || undefined;
    const events = await readFile(`${dir}/pids.events`, 'utf8').catch(() => '');
    const max = /^max (\d+)$/m.exec(events);
    const hits = max ? Number(max[1]) : undefined;
    if (hits !== undefined) this.pidsHits.set(leaseId, Math.max(hits, this.pidsHits.get(leaseId) ?? 0));
    return { pidsCurrent: current, pidsLimitHits: hits };
  }

  /**
   * One pass of the disk quota: every running lease with a diskBytes label whose writable layer
   * (SizeRw) is larger is stopped with reason `disk-quota`. Also samples the pids counters.
   * Returns the leases stopped. overlay2 on ext4 cannot enforce a size, so this is the enforcement.
   */
  async enforceDiskQuota(signal?: AbortSignal): Promise<string[]> {
    const stopped: string[] = [];
    const containers = await this.list({ size: true });
    for (const c of containers) {
      if (signal?.aborted) break;
      if (!c.running) continue;
      await this.sampleLimits(c.leaseId).catch(() => undefined);
      if (c.diskBytes === undefined || c.sizeRwBytes === undefined || c.sizeRwBytes <= c.diskBytes) continue;
      this.deps.log.warn({ leaseId: c.leaseId, sizeRw: c.sizeRwBytes, diskBytes: c.diskBytes }, 'lease over its disk quota; stopping it');
      this.stopReasons.set(c.leaseId, 'disk-quota');
      await this.stop(c.leaseId, 'disk-quota', { signal });
      stopped.push(c.leaseId);
    }
    return stopped;
  }

  /** Runs enforceDiskQuota every runtime.diskCheckIntervalSeconds until the signal aborts. */
  async watchDisk(options: { signal: AbortSignal; onStopped?: (leaseId: string) => void }): Promise<void> {
    const interval = this.deps.config.runtime.diskCheckIntervalSeconds * 1000;
    while (!options.signal.aborted) {
      try {
        for (const leaseId of await this.enforceDiskQuota(options.signal)) options.onStopped?.(leaseId);
      } catch (err) {
        if (!options.signal.aborted) this.deps.log.warn({ err: describeError(err) }, 'disk quota check failed');
      }
      await sleep(interval, options.signal).catch(() => undefined);
    }
  }

  /**
   * runtime.nofileLimit, lowered to this host's hard open-files limit: without CAP_SYS_RESOURCE
   * (rootless, nested, some VPS kernels) runc cannot raise it above that and every start would fail
   * with "error setting rlimit type 7". Our own hard limit stands in for dockerd's (same host).
   */
  private async nofileCeiling(): Promise<number> {
    if (this.nofile !== undefined) return this.nofile;
    const wanted = this.deps.config.runtime.nofileLimit;
    let ceiling = wanted;
    try {
      const limits = await readFile(`${this.deps.procRoot ?? '/proc'}/self/limits`, 'utf8');
      const hard = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(limits)?.[1];
      if (hard !== undefined && hard !== 'unlimited') ceiling = Math.min(wanted, Number(hard));
    } catch {
      // Not Linux /proc: keep the configured value.
    }
    if (ceiling < wanted) this.deps.log.warn({ configured: wanted, used: ceiling }, 'runtime.nofileLimit is above this host\'s hard open-files limit; using the host limit');
    this.nofile = ceiling;
    return ceiling;
  }

  private async ensureNetwork(leaseId: string, bridge: string, signal: AbortSignal | undefined): Promise<boolean> {
    const name = networkName(leaseId);
    try {
      await this.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Internal: false,
        Attachable: false,
        EnableIPv6: false,
        Options: {
          'com.docker.network.bridge.name': bridge,
          'com.docker.network.bridge.enable_icc': 'false',
          'com.docker.network.bridge.enable_ip_masquerade': 'true',
        },
        Labels: { [LABELS.managed]: 'true', [LABELS.leaseId]: leaseId, [LABELS.bridge]: bridge },
        abortSignal: signal,
      } as Docker.NetworkCreateOptions);
      return false;
    } catch (err) {
      if (isEngineConflict(err) || /already exists/i.test(engineMessage(err))) {
        const existing = await this.docker.getNetwork(name).inspect();
        if (existing.Labels?.[LABELS.leaseId] === leaseId && existing.Options?.['com.docker.network.bridge.name'] === bridge) return true;
        throw new ProviderError('NETWORK_SETUP_FAILED', `network ${name} exists and is not the one this lease would create`, { input: name });
      }
      throw new ProviderError('NETWORK_SETUP_FAILED', `could not create the network of lease ${leaseId}: ${engineMessage(err)}`, {
        input: leaseId,
        cause: err,
        fix: /pool|overlap/i.test(engineMessage(err)) ? 'Docker ran out of address pools: set default-address-pools in /etc/docker/daemon.json' : undefined,
      });
    }
  }

  private async teardown(leaseId: string, containerId: string | undefined): Promise<void> {
    this.prepared.delete(leaseId);
    const target = containerId ?? containerName(leaseId);
    try {
      await this.docker.getContainer(target).remove({ force: true, v: true });
    } catch (err) {
      if (!isEngineNotFound(err) && !/removal of container .* is already in progress/i.test(engineMessage(err))) throw err;
    }
    try {
      await this.docker.getNetwork(networkName(leaseId)).remove();
    } catch (err) {
      if (!isEngineNotFound(err)) throw err;
    }
    await this.deps.firewall.remove(leaseId);
  }
}

function publishedPorts(info: Docker.ContainerInspectInfo): PublishedPort[] {
  const out: PublishedPort[] = [];
  const ports = (info.NetworkSettings?.Ports ?? {}) as Record<string, { HostIp: string; HostPort: string }[] | null>;
  for (const [key, bindings] of Object.entries(ports)) {
    const [port, protocol] = key.split('/');
    const binding = (bindings ?? []).find((b) => b.HostPort);
    if (!binding) continue;
    out.push({ containerPort: Number(port), protocol: protocol === 'udp' ? 'udp' : 'tcp', hostPort: Number(binding.HostPort) });
  }
  return out.sort((a, b) => a.containerPort - b.containerPort);
}

/** The lease's container name is taken: by this lease's own container on a retried start. */
class AlreadyThere extends Error {}

function notFound(leaseId: string): ProviderError {
  return new ProviderError('CONTAINER_NOT_FOUND', `lease ${leaseId} has no container`, { input: leaseId });
}
