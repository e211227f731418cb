import { locateCgroup, readCgroupCounters, type CgroupCounters, type CgroupLocation } from './cgroup';
import { readNetCounters, type NetCounters } from './net-dev';
import type { KernelFiles } from './proc-files';

export type CounterSample = CgroupCounters & NetCounters;

/**
 * Reads a running container's cumulative counters from its init process. The cgroup is located
 * once per pid: it does not move while the process lives, and a new pid (restart) is looked up
 * afresh.
 */
export class ContainerCounterReader {
  private readonly locations = new Map<number, CgroupLocation>();

  constructor(private readonly files: KernelFiles) {}

  async read(pid: number): Promise<CounterSample> {
    let location = this.locations.get(pid);
    if (!location) {
      location = await locateCgroup(this.files, pid);
      this.locations.set(pid, location);
    }
    try {
      const [cgroup, net] = await Promise.all([readCgroupCounters(this.files, location), readNetCounters(this.files, pid)]);
      return { ...cgroup, ...net };
    } catch (err) {
      this.locations.delete(pid);
      throw err;
    }
  }

  /** Drops what is known of a process that has ended. */
  forget(pid: number): void {
    this.locations.delete(pid);
  }
}
