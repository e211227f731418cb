import { z } from 'zod';
import type { CgroupCounters } from './cgroup';
import type { LeaseCgroups } from './lease-cgroup';
import { leaseTrafficFromBridge, readBridgeCounters, type BridgeCounters, type NetCounters } from './net-dev';
import type { KernelFiles } from './proc-files';

/**
 * What the lease's parent cgroup and bridge had counted before its container started: counters
 * are billed from there. Both are the lease's own and usually new (zero), but a retried start can
 * find a parent a failed container used, and a bridge may be older than the container on it.
 */
export interface LeaseBaseline {
  cpuNanos: bigint;
  bridge: BridgeCounters;
}

export type LeaseSample = Pick<CgroupCounters, 'cpuNanos' | 'memoryBytes'> & NetCounters;

const count = z.string().regex(/^\d{1,30}$/).transform((s) => BigInt(s));
const baselineWire = z.strictObject({ cpuNanos: count, rxBytes: count, rxPackets: count, txBytes: count });

/** The baseline as a container label value (it travels with the container, so it survives a daemon restart). */
export function encodeBaseline(baseline: LeaseBaseline): string {
  const { cpuNanos, bridge } = baseline;
  return JSON.stringify({ cpuNanos: String(cpuNanos), rxBytes: String(bridge.rxBytes), rxPackets: String(bridge.rxPackets), txBytes: String(bridge.txBytes) });
}

/** The baseline a label holds; undefined when it holds none that parses (billed from zero then). */
export function decodeBaseline(text: string | undefined): LeaseBaseline | undefined {
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = baselineWire.safeParse(json);
  if (!parsed.success) return undefined;
  const { cpuNanos, rxBytes, rxPackets, txBytes } = parsed.data;
  return { cpuNanos, bridge: { rxBytes, rxPackets, txBytes } };
}

const NO_TRAFFIC: BridgeCounters = { rxBytes: 0n, rxPackets: 0n, txBytes: 0n };

/**
 * A lease's counters from what outlives its container: CPU and memory from its parent cgroup,
 * traffic from its bridge. Read while it runs and once more after it exited, so the CPU and bytes
 * it used after the last sample are billed too.
 */
export class LeaseCounterReader {
  constructor(
    private readonly files: KernelFiles,
    private readonly cgroups: LeaseCgroups,
  ) {}

  /** Taken just before the container is created. */
  async baseline(runtimeId: string, bridge: string): Promise<LeaseBaseline> {
    const [cpuNanos, traffic] = await Promise.all([
      this.cgroups.cpuNanos(runtimeId),
      readBridgeCounters(this.files, bridge).catch((err: NodeJS.ErrnoException) => {
        // No bridge yet: the start creates it, empty.
        if (err.code === 'ENOENT') return NO_TRAFFIC;
        throw err;
      }),
    ]);
    return { cpuNanos, bridge: traffic };
  }

  /**
   * Cumulative since the baseline. `ended`: the workload has exited, so it holds no memory (what
   * its parent still shows is page cache the kernel moved up from the removed group).
   */
  async read(runtimeId: string, bridge: string, baseline: LeaseBaseline | undefined, options: { ended: boolean }): Promise<LeaseSample> {
    const [cgroup, traffic] = await Promise.all([this.cgroups.read(runtimeId), readBridgeCounters(this.files, bridge)]);
    const from = baseline ?? { cpuNanos: 0n, bridge: NO_TRAFFIC };
    return {
      cpuNanos: cgroup.cpuNanos >= from.cpuNanos ? cgroup.cpuNanos - from.cpuNanos : cgroup.cpuNanos,
      memoryBytes: options.ended ? 0 : cgroup.memoryBytes,
      ...leaseTrafficFromBridge(traffic, from.bridge),
    };
  }
}
