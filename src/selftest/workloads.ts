import type { ManifestInput } from '../runtime';

const MiB = 2 ** 20;

/** The line every selftest workload prints first: a nonce, so an old lease's log cannot pass. */
export function markerLine(nonce: string): string {
  return `selftest ${nonce}`;
}

export interface WorkloadOptions {
  image: string;
  /** Hex only: it is written into a shell script. */
  nonce: string;
  /**
   * The daemon's metering interval. The workload outlives one sample after its CPU burst: the
   * daemon reads a container's counters only while it runs, so a burst that ends before the first
   * sample is never seen by metering.
   */
  sampleIntervalSeconds: number;
}

/** Seconds the CPU workload keeps a core busy. */
export const CPU_BURN_SECONDS = 2;

/**
 * A small CPU lease: prints the marker, keeps the CPU busy for ~2 s (forking `date` counts as
 * work too), stays up one metering interval so a sample sees the burst, then exits 0.
 */
export function cpuWorkload(options: WorkloadOptions): ManifestInput {
  const hold = options.sampleIntervalSeconds + 1;
  const script = [
    `echo '${markerLine(options.nonce)}'`,
    `end=$(( $(date +%s) + ${CPU_BURN_SECONDS} ))`,
    'while [ "$(date +%s)" -lt "$end" ]; do :; done',
    `sleep ${hold}`,
    "echo 'selftest done'",
  ].join('; ');
  return {
    image: options.image,
    command: ['sh', '-c', script],
    resources: { cpuMillis: 500, memoryBytes: 64 * MiB },
    // Room for a pull of a small image on a slow line; the lease ends when the script does.
    maxDurationSeconds: 120 + hold,
  };
}

/**
 * One GPU of `model`: prints the marker, then `nvidia-smi -L` (a line per GPU the container
 * sees, each starting "GPU "), and like the CPU workload outlives one metering sample.
 */
export function gpuWorkload(options: WorkloadOptions & { model: string }): ManifestInput {
  const hold = options.sampleIntervalSeconds + 1;
  return {
    image: options.image,
    command: ['sh', '-c', `echo '${markerLine(options.nonce)}'; nvidia-smi -L || exit $?; sleep ${hold}`],
    resources: { cpuMillis: 500, memoryBytes: 256 * MiB, gpus: { count: 1, model: options.model } },
    // CUDA images are large: a first pull takes minutes.
    maxDurationSeconds: 600 + hold,
  };
}
