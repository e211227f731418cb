export interface ListedMigDevice {
  uuid: string;
  profile: string;
}

export interface ListedGpu {
  index: number;
  model: string;
  migDevices: Map<number, ListedMigDevice>;
}

/**
 * Parses `nvidia-smi -L`, the one place nvidia-smi prints MIG device UUIDs (NVIDIA's own
 * device plugin reads them through NVML; tools without NVML bindings read this listing):
 *
 * ```text
 * GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-...)
 *   MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-...)
 * ```
 *
 * R450/R460 drivers wrote MIG UUIDs as `MIG-GPU-<gpu uuid>/<gi>/<ci>`; both forms are kept as
 * printed, since that is what NVIDIA_VISIBLE_DEVICES accepts on that driver. `Device N` is the
 * same index as `<mig_device><index>` in `-q -x`, which is how the two are joined.
 * Returns GPUs keyed by GPU UUID; lines it does not recognise are skipped.
 */
export function parseNvidiaSmiList(output: string): Map<string, ListedGpu> {
  const gpus = new Map<string, ListedGpu>();
  let current: ListedGpu | undefined;
  for (const line of output.split(/\r?\n/)) {
    const gpu = /^GPU\s+(\d+):\s*(.*?)\s*\(UUID:\s*([^)\s]+)\s*\)/.exec(line.trim());
    if (gpu) {
      current = { index: Number(gpu[1]), model: gpu[2] ?? '', migDevices: new Map() };
      gpus.set(gpu[3] ?? '', current);
      continue;
    }
    const mig = /^MIG\s+(\S+)\s+Device\s+(\d+):\s*\(UUID:\s*([^)\s]+)\s*\)/.exec(line.trim());
    if (mig && current) {
      current.migDevices.set(Number(mig[2]), { profile: mig[1] ?? '', uuid: mig[3] ?? '' });
    }
  }
  return gpus;
}
