import Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import type { Clock } from '../util/clock';
import type { Exec } from '../util/exec';
import { CapacityDetector, capacitySettings, type DockerSource } from './capacity-detector';
import { DockerProbe } from './docker-probe';
import { HostProbe, systemInformationSource } from './host-probe';
import { GpuUtilizationSampler } from './gpu-utilization';
import { NvidiaSmi } from './nvidia-smi';

/** systeminformation shells out to df and reads /proc; a hung NFS mount must not hang detection. */
export const HOST_PROBE_TIMEOUT_MS = 10_000;

export interface CapacityWiring {
  exec: Exec;
  /** The environment nvidia-smi runs in. */
  env: NodeJS.ProcessEnv;
  clock: Clock;
  /** The Docker engine as the detector sees it; the socket in docker.socketPath when unset. */
  docker?: DockerSource;
}

/** Builds the detector the CLI and the daemon use, from the config and the process's environment. */
export function createCapacityDetector(config: ProviderConfig, wiring: CapacityWiring): CapacityDetector {
  // PROVIDER_NVIDIA_SMI reaches us as gpu.nvidiaSmiPath (the config loader's env layer).
  const nvidiaSmiPath = config.gpu.nvidiaSmiPath ?? 'nvidia-smi';
  const nvidiaSmi = new NvidiaSmi({ exec: wiring.exec, path: nvidiaSmiPath, timeoutMs: config.gpu.nvidiaSmiTimeoutMs, env: wiring.env });
  const docker = wiring.docker ?? new DockerProbe(new Docker({ socketPath: config.docker.socketPath }), {
    socketPath: config.docker.socketPath,
    timeoutMs: config.docker.requestTimeoutMs,
    sandbox: config.runtime.sandbox,
  });
  const host = new HostProbe({ source: systemInformationSource(), timeoutMs: HOST_PROBE_TIMEOUT_MS });
  return new CapacityDetector({ host, gpus: nvidiaSmi, docker, clock: wiring.clock }, capacitySettings(config));
}

/**
 * The sampler the meter reads GPU leases' utilisation from, or none when gpu.utilization.enabled
 * is off. Its nvidia-smi runs bounded by gpu.utilization.timeoutMs, not the (longer) detection bound.
 */
export function createGpuSampler(config: ProviderConfig, wiring: CapacityWiring): GpuUtilizationSampler | undefined {
  const { utilization } = config.gpu;
  if (!utilization.enabled) return undefined;
  const source = new NvidiaSmi({ exec: wiring.exec, path: config.gpu.nvidiaSmiPath ?? 'nvidia-smi', timeoutMs: utilization.timeoutMs, env: wiring.env });
  return new GpuUtilizationSampler({ source, clock: wiring.clock, maxAgeMs: utilization.maxAgeSeconds * 1000 });
}
