import Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import type { Clock } from '../util/clock';
import type { Exec } from '../util/exec';
import { CapacityDetector, capacitySettings } from './capacity-detector';
import { DockerProbe } from './docker-probe';
import { HostProbe, systemInformationSource } from './host-probe';
import { NvidiaSmi } from './nvidia-smi';

/** systeminformation shells out to df and reads /proc; a hung NFS mount must not hang detection. */
export const HOST_PROBE_TIMEOUT_MS = 10_000;

export interface CapacityWiring {
  exec: Exec;
  /** The environment nvidia-smi runs in; PROVIDER_NVIDIA_SMI is read from it. */
  env: NodeJS.ProcessEnv;
  clock: Clock;
}

/** Builds the detector the CLI and the daemon use, from the config and the process's environment. */
export function createCapacityDetector(config: ProviderConfig, wiring: CapacityWiring): CapacityDetector {
  // The config loader leaves PROVIDER_NVIDIA_SMI alone (it is not a config key): it is honoured
  // here, after gpu.nvidiaSmiPath (file or --set), before a PATH lookup.
  const nvidiaSmiPath = config.gpu.nvidiaSmiPath ?? (wiring.env.PROVIDER_NVIDIA_SMI || undefined) ?? 'nvidia-smi';
  const nvidiaSmi = new NvidiaSmi({ exec: wiring.exec, path: nvidiaSmiPath, timeoutMs: config.gpu.nvidiaSmiTimeoutMs, env: wiring.env });
  const docker = new DockerProbe(new Docker({ socketPath: config.docker.socketPath }), {
    socketPath: config.docker.socketPath,
    timeoutMs: config.docker.requestTimeoutMs,
  });
  const host = new HostProbe({ source: systemInformationSource(), timeoutMs: HOST_PROBE_TIMEOUT_MS });
  return new CapacityDetector({ host, gpus: nvidiaSmi, docker, clock: wiring.clock }, capacitySettings(config));
}
