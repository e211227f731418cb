import type { CapacityReport } from './types';

/** One GPU model (or MIG profile) this machine sells, as offers and the on-chain metadata show it. */
export interface GpuModelInfo {
  model: string;
  /** MIG profile such as `3g.20gb`; null for whole GPUs. */
  profile: string | null;
  memoryBytes: number | null;
  driverVersion: string | null;
  cudaVersion: string | null;
  /** The PCIe link the card trained to at its best (max), which is what a workload gets under load. */
  pcie: { gen: number | null; width: number | null };
  /** Units of it on this machine that gpu.offer and Docker allow, on sale or not. */
  total: number;
  /** Units on sale by health (held by quotes and leases included). */
  healthy: number;
  /** Units off sale by health, with why. */
  unhealthy: { uuid: string; reason: string }[];
}

/** The allocatable GPUs grouped by model and profile, with the health verdicts of `withdrawn`. */
export function gpuCatalogue(report: CapacityReport, withdrawn: ReadonlyMap<string, string>): GpuModelInfo[] {
  const devices = report.gpus.ok ? report.gpus.devices : [];
  const groups = new Map<string, GpuModelInfo>();
  for (const unit of report.allocatable.gpus) {
    const gpu = devices.find((d) => d.uuid === unit.gpuUuid);
    const key = `${unit.model}|${unit.profile ?? ''}`;
    const group = groups.get(key) ?? {
      model: unit.model,
      profile: unit.profile,
      memoryBytes: unit.memoryBytes,
      driverVersion: gpu?.driverVersion ?? null,
      cudaVersion: gpu?.cudaVersion ?? null,
      pcie: { gen: gpu?.pcie.maxGen ?? null, width: gpu?.pcie.maxWidth ?? null },
      total: 0,
      healthy: 0,
      unhealthy: [],
    };
    group.total += 1;
    const why = withdrawn.get(unit.gpuUuid);
    if (why === undefined) group.healthy += 1;
    else group.unhealthy.push({ uuid: unit.uuid, reason: why });
    groups.set(key, group);
  }
  return [...groups.values()];
}
