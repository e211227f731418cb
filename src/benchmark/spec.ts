import type { ProviderConfig } from '../config';
import { buildDeviceRequests, gpuEnv, type ContainerSpec } from '../runtime';

/** Where the image keeps the benchmark (provisioners/gpu-bench/Dockerfile puts it there). */
export const BENCH_BINARY = '/usr/local/bin/gpu-bench';
export const BENCH_LABEL = 'provider.gpu-bench';

/**
 * The benchmark's container for one GPU: the GPU by UUID exactly as a lease gets it (the same
 * device-request and NVIDIA_* builders), no network, a read-only root, one core, bounded memory
 * and processes, every capability dropped. Pure, so the spec is asserted whole in a test.
 */
export function benchContainerSpec(uuid: string, settings: Pick<ProviderConfig, 'gpu'>): ContainerSpec {
  const { gpu } = settings;
  const memoryBytes = gpu.benchmark.memoryBytes;
  return {
    // A MIG UUID of the old form holds slashes; container names allow [a-zA-Z0-9_.-].
    name: `provider-gpu-bench-${uuid.replace(/[^a-zA-Z0-9_.-]/g, '_')}`,
    Image: gpu.benchmark.image,
    Entrypoint: [BENCH_BINARY],
    Cmd: [],
    Env: gpuEnv([uuid], gpu.mode, 'compute,utility'),
    Labels: { [BENCH_LABEL]: uuid },
    AttachStdin: false,
    OpenStdin: false,
    Tty: false,
    NetworkDisabled: true,
    HostConfig: {
      NetworkMode: 'none',
      DeviceRequests: buildDeviceRequests([uuid], gpu.mode),
      NanoCpus: 1_000_000_000,
      Memory: memoryBytes,
      MemorySwap: memoryBytes,
      PidsLimit: 64,
      ReadonlyRootfs: true,
      Privileged: false,
      CapDrop: ['ALL'],
      CapAdd: [],
      SecurityOpt: ['no-new-privileges:true'],
      IpcMode: 'private',
      CgroupnsMode: 'private',
      Binds: [],
      Mounts: [],
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
    },
  };
}
