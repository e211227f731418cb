import type Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import { describeError } from '../errors';
import type { Logger } from '../log';
import {
  LeaseCgroups,
  LeaseCounterReader,
  decodeBaseline,
  encodeBaseline,
  leaseCgroupSupport,
  type CounterSample,
  type KernelFiles,
} from '../metering';
import type { Signalled, WorkloadCounters } from './backend';
import { boundedCall } from './bounded-call';
import { LABELS, bridgeName } from './names';
import type { SpecInput } from './spec';

/** Reads a process's cumulative counters (ContainerCounterReader); keyed by pid, which only this adapter sees. */
export interface PidCounterReader {
  read(pid: number): Promise<CounterSample>;
  forget(pid: number): void;
}

export interface DockerCountersDeps {
  docker: Docker;
  inspect(runtimeId: string, options: Signalled): Promise<Docker.ContainerInspectInfo>;
  pids: PidCounterReader;
  kernel: KernelFiles;
  config: Pick<ProviderConfig, 'docker' | 'metering'>;
  log: Logger;
}

/** The counters' baseline (metering's LeaseBaseline), on the container it belongs to. */
export const BASELINE_LABEL = 'provider.counters-baseline';

/**
 * A lease container's counters on a Docker engine. On a cgroupfs-driver host the container runs
 * under a parent cgroup of the lease's own, and its traffic crosses the lease's own bridge: both
 * outlive the container, so the counters are read there, while it runs and once more after it
 * exited (`final`). A container without that parent (started before, or under the systemd driver)
 * is read by its init pid while it runs, and has no final count.
 */
export class DockerLeaseCounters {
  private host: Promise<LeaseCgroups | undefined> | undefined;
  /** The init pid each pid-read lease was last read from, to forget it when it changes. */
  private readonly pids = new Map<string, number>();

  constructor(private readonly deps: DockerCountersDeps) {}

  /** What the lease's container is created with so its counters outlive it; undefined where they cannot. */
  async startOptions(runtimeId: string, options: Signalled): Promise<SpecInput['metering']> {
    const cgroups = await this.cgroups(options);
    if (!cgroups) return undefined;
    const baseline = await new LeaseCounterReader(this.deps.kernel, cgroups).baseline(runtimeId, bridgeName(runtimeId));
    return { cgroupParent: cgroups.parentOf(runtimeId), labels: { [BASELINE_LABEL]: encodeBaseline(baseline) } };
  }

  /** The running container's counters; undefined when it is not running. */
  async running(runtimeId: string, options: Signalled): Promise<WorkloadCounters | undefined> {
    const info = await this.deps.inspect(runtimeId, options);
    const pid = this.runningPid(runtimeId, info);
    if (pid === undefined) return undefined;
    const lease = await this.leaseReader(runtimeId, info, options);
    if (lease) return lease.read({ ended: false });
    try {
      const { cpuNanos, memoryBytes, rxBytes, txBytes } = await this.deps.pids.read(pid);
      return { cpuNanos, memoryBytes, rxBytes, txBytes };
    } catch (err) {
      // Its files vanish with the process: a workload that ended since the inspect has no counters.
      if (this.runningPid(runtimeId, await this.deps.inspect(runtimeId, options)) !== pid) return undefined;
      throw err;
    }
  }

  /** The ended container's counters at its end; undefined while it runs or when it has no parent of its own. */
  async final(runtimeId: string, options: Signalled): Promise<WorkloadCounters | undefined> {
    const info = await this.deps.inspect(runtimeId, options);
    if (this.runningPid(runtimeId, info) !== undefined) return undefined;
    const lease = await this.leaseReader(runtimeId, info, options);
    return lease?.read({ ended: true });
  }

  /** Removes what the lease's counters had (its parent cgroup): the lease's runtime objects are gone. */
  async remove(runtimeId: string, options: Signalled): Promise<void> {
    this.forget(runtimeId);
    const cgroups = await this.cgroups(options);
    // A parent the kernel will not remove yet stays for reconcile: it must not hold up the lease's removal.
    await cgroups?.remove(runtimeId).catch((err: unknown) => this.deps.log.warn({ leaseId: runtimeId, err: describeError(err) }, 'could not remove the lease\'s cgroup; reconcile will'));
  }

  /** Removes the parents of leases `keep` does not hold: what a crash left. */
  async collect(keep: (runtimeId: string) => boolean, options: Signalled): Promise<void> {
    const cgroups = await this.cgroups(options);
    if (!cgroups) return;
    const { removed, failed } = await cgroups.collect(keep);
    if (removed.length > 0) this.deps.log.info({ leases: removed }, 'removed the cgroups of leases that no longer exist');
    for (const { runtimeId, error } of failed) this.deps.log.warn({ leaseId: runtimeId, err: error }, 'could not remove the cgroup of a lease that no longer exists');
  }

  private async leaseReader(runtimeId: string, info: Docker.ContainerInspectInfo, options: Signalled): Promise<{ read(o: { ended: boolean }): Promise<WorkloadCounters> } | undefined> {
    if (!info.HostConfig.CgroupParent) return undefined;
    const cgroups = await this.cgroups(options);
    if (!cgroups || info.HostConfig.CgroupParent !== cgroups.parentOf(runtimeId)) return undefined;
    const reader = new LeaseCounterReader(this.deps.kernel, cgroups);
    const bridge = info.Config.Labels?.[LABELS.bridge] ?? bridgeName(runtimeId);
    const baseline = decodeBaseline(info.Config.Labels?.[BASELINE_LABEL]);
    return { read: (o: { ended: boolean }) => reader.read(runtimeId, bridge, baseline, o) };
  }

  /** The container's init pid while it runs; forgets the counters of a pid that is gone. */
  private runningPid(runtimeId: string, info: Docker.ContainerInspectInfo): number | undefined {
    const pid = info.State.Running && info.State.Pid ? info.State.Pid : undefined;
    const known = this.pids.get(runtimeId);
    if (known !== undefined && known !== pid) this.deps.pids.forget(known);
    if (pid === undefined) this.pids.delete(runtimeId);
    else this.pids.set(runtimeId, pid);
    return pid;
  }

  private forget(runtimeId: string): void {
    const pid = this.pids.get(runtimeId);
    if (pid !== undefined) this.deps.pids.forget(pid);
    this.pids.delete(runtimeId);
  }

  /** The engine's cgroup set-up, asked once: lease parents where its driver allows them. */
  private cgroups(options: Signalled): Promise<LeaseCgroups | undefined> {
    this.host ??= this.detect(options).catch((err: unknown) => {
      this.host = undefined;
      throw err;
    });
    return this.host;
  }

  private async detect(options: Signalled): Promise<LeaseCgroups | undefined> {
    const { docker, config, kernel, log } = this.deps;
    const info = (await boundedCall('info of the container engine', { signal: options.signal, timeoutMs: config.docker.requestTimeoutMs }, (abortSignal) =>
      (docker.info as (options: object) => Promise<unknown>).call(docker, { abortSignal }),
    )) as { CgroupDriver?: string; CgroupVersion?: string };
    // Engines before API 1.40 do not report the version: they only ran on cgroup v1.
    const host = { version: info.CgroupVersion === '2' ? (2 as const) : (1 as const), driver: info.CgroupDriver ?? 'cgroupfs' };
    const support = leaseCgroupSupport(host);
    if (!support.supported) {
      log.warn({ cgroupVersion: host.version, cgroupDriver: host.driver, fix: support.fix }, support.why);
      return undefined;
    }
    return new LeaseCgroups(kernel, host, config.metering.cgroupParent);
  }
}
