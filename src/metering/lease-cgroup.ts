import { join } from 'node:path';
import { readCgroupCounters, type CgroupCounters, type CgroupLocation } from './cgroup';
import type { KernelFiles } from './proc-files';

/** How the container engine manages cgroups on this host (Docker's `info`: CgroupVersion, CgroupDriver). */
export interface CgroupHost {
  version: 1 | 2;
  driver: string;
}

/** Where lease parents are kept, or why a host cannot have them. */
export type LeaseCgroupSupport = { supported: true } | { supported: false; why: string; fix: string };

const LEASE_PREFIX = 'lease-';

/**
 * Whether leases get a parent cgroup of their own on this host. Only with the cgroupfs driver:
 * there CgroupParent is a plain path the runtime creates (runc and runsc alike, in every v1
 * hierarchy or under the v2 root), and it stays when the container's own group is removed at its
 * exit. Docker's systemd driver takes a slice unit instead, which systemd owns and only systemd
 * can remove; under it the meter reads the container's own group by its pid, as before.
 */
export function leaseCgroupSupport(host: CgroupHost): LeaseCgroupSupport {
  if (host.driver === 'cgroupfs') return { supported: true };
  return {
    supported: false,
    why: `Docker uses the ${host.driver} cgroup driver: a lease's CPU is read from its container's own cgroup, which goes with the container, so CPU used after the last sample of a workload that exits by itself is not billed`,
    fix: 'set "exec-opts": ["native.cgroupdriver=cgroupfs"] in /etc/docker/daemon.json and restart Docker, or shorten metering.sampleIntervalSeconds',
  };
}

/** The CgroupParent of a lease's container: `/<top>/lease-<runtimeId>`. */
export function leaseCgroupParent(top: string, runtimeId: string): string {
  return `/${top}/${LEASE_PREFIX}${runtimeId}`;
}

/**
 * A lease's own parent cgroup, under `top`, on a cgroupfs-driver host: its counters (the kernel
 * keeps a removed child's CPU time in its parent: cpuacct.usage on v1, cpu.stat on v2), its
 * removal, and the collection of those no lease owns. The parent is created by the runtime when
 * the container starts; only its removal is ours.
 */
export class LeaseCgroups {
  constructor(
    private readonly files: KernelFiles,
    private readonly host: CgroupHost,
    private readonly top: string,
  ) {}

  parentOf(runtimeId: string): string {
    return leaseCgroupParent(this.top, runtimeId);
  }

  /** The lease's CPU and memory since its parent was created; ENOENT when it has none. */
  read(runtimeId: string): Promise<CgroupCounters> {
    return readCgroupCounters(this.files, this.location(this.parentOf(runtimeId)));
  }

  /** CPU time in the lease's parent now; 0 when it has none yet (the runtime creates it at the start). */
  async cpuNanos(runtimeId: string): Promise<bigint> {
    try {
      return (await this.read(runtimeId)).cpuNanos;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0n;
      throw err;
    }
  }

  /** Removes the lease's parent in every hierarchy; one that is not there is fine. */
  async remove(runtimeId: string): Promise<void> {
    const parent = this.parentOf(runtimeId);
    for (const hierarchy of await this.hierarchies()) await this.files.removeDir(join(hierarchy, parent));
  }

  /**
   * Removes the parents of leases `keep` does not hold (what a crash or a failed removal left);
   * returns their runtime ids. One still in use (a task or a child in it) stays: the kernel
   * refuses its removal.
   */
  async collect(keep: (runtimeId: string) => boolean): Promise<{ removed: string[]; failed: { runtimeId: string; error: string }[] }> {
    const owners = new Set<string>();
    for (const hierarchy of await this.hierarchies()) {
      for (const name of await this.files.list(join(hierarchy, this.top))) {
        if (name.startsWith(LEASE_PREFIX) && name.length > LEASE_PREFIX.length) owners.add(name.slice(LEASE_PREFIX.length));
      }
    }
    const removed: string[] = [];
    const failed: { runtimeId: string; error: string }[] = [];
    for (const runtimeId of owners) {
      if (keep(runtimeId)) continue;
      try {
        await this.remove(runtimeId);
        removed.push(runtimeId);
      } catch (err) {
        failed.push({ runtimeId, error: (err as Error).message });
      }
    }
    return { removed, failed };
  }

  private location(parent: string): CgroupLocation {
    const root = this.files.cgroupRoot;
    if (this.host.version === 2) return { version: 2, dir: join(root, parent) };
    // Debian mounts cpu and cpuacct together as cpu,cpuacct and links cpuacct to it; this name works either way.
    return { version: 1, cpuacctDir: join(root, 'cpuacct', parent), memoryDir: join(root, 'memory', parent) };
  }

  /** v2: the one tree; v1: every mounted hierarchy, since the runtime creates the parent in each (named ones and the hybrid `unified` included). */
  private async hierarchies(): Promise<string[]> {
    const root = this.files.cgroupRoot;
    if (this.host.version === 2) return [root];
    return (await this.files.list(root)).map((name) => join(root, name));
  }
}
