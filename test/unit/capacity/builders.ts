import type { Allocatable, AllocatableGpu, CpuInfo, Detected, DiskInfo, DockerInfo, Gpu, GpuInventory, GpuPassthrough, MemoryInfo, MigDevice, ProbeFailure } from '../../../src/capacity';
import { describeSandbox } from '../../../src/runtime';
import { GiB } from './fixtures';

export function aMigDevice(overrides: Partial<MigDevice> = {}): MigDevice {
  const index = overrides.index ?? 0;
  return {
    index,
    uuid: `MIG-00000000-0000-0000-0000-00000000000${index}`,
    profile: '3g.20gb',
    gpuInstanceId: 1,
    computeInstanceId: 0,
    memory: { totalBytes: 20 * GiB, usedBytes: 0, freeBytes: 20 * GiB },
    ...overrides,
  };
}

export function aGpu(overrides: Partial<Gpu> & { migDevices?: MigDevice[] } = {}): Gpu {
  const { migDevices, ...rest } = overrides;
  const index = rest.index ?? 0;
  return {
    index,
    uuid: `GPU-00000000-0000-0000-0000-00000000000${index}`,
    model: 'NVIDIA A100-SXM4-40GB',
    busId: `00000000:0${index}:00.0`,
    driverVersion: '535.129.03',
    cudaVersion: '12.2',
    memory: { totalBytes: 40 * GiB, usedBytes: 0, freeBytes: 40 * GiB, reservedBytes: 0 },
    utilization: { gpuPercent: 0, memoryPercent: 0 },
    pcie: { currentGen: 4, maxGen: 4, currentWidth: 16, maxWidth: 16 },
    mig: migDevices ? { current: 'enabled', pending: 'enabled', devices: migDevices } : { current: 'disabled', pending: 'disabled', devices: [] },
    ...rest,
  };
}

export function gpusDetected(...devices: Gpu[]): Detected<GpuInventory> {
  return { ok: true, driverVersion: '535.129.03', cudaVersion: '12.2', devices };
}

export function aPassthrough(overrides: Partial<GpuPassthrough> = {}): GpuPassthrough {
  return {
    possible: true,
    via: ['runtime'],
    reasonCode: null,
    reason: null,
    nvidiaRuntime: true,
    nvidiaHook: null,
    cdi: { enabledInDocker: false, specDirs: ['/etc/cdi', '/var/run/cdi'], nvidiaSpecFiles: [] },
    ...overrides,
  };
}

export function dockerDetected(passthrough: GpuPassthrough = aPassthrough()): Detected<DockerInfo> {
  return { ok: true, ...aDockerInfo(passthrough) };
}

export function aDockerInfo(passthrough: GpuPassthrough = aPassthrough()): DockerInfo {
  return {
    engineVersion: '27.3.1',
    apiVersion: '1.47',
    os: 'Ubuntu 24.04.1 LTS',
    osType: 'linux',
    architecture: 'x86_64',
    kernelVersion: '6.8.0-48-generic',
    cgroupVersion: 2,
    cgroupDriver: 'systemd',
    storageDriver: 'overlay2',
    runtimes: passthrough.nvidiaRuntime ? ['io.containerd.runc.v2', 'nvidia', 'runc'] : ['io.containerd.runc.v2', 'runc'],
    defaultRuntime: 'runc',
    gpuPassthrough: passthrough,
    sandbox: describeSandbox('auto', { runsc: true, runscGpu: false }),
  };
}

export const NO_NVIDIA_RUNTIME = aPassthrough({
  possible: false,
  via: [],
  nvidiaRuntime: false,
  reasonCode: 'docker-has-no-nvidia-runtime',
  reason: 'Docker has no nvidia runtime (runtimes: io.containerd.runc.v2, runc) and CDI is off in this engine',
});

export function failed(code: ProbeFailure['code'], reason = 'it broke'): ProbeFailure {
  return { ok: false, code, reason, fix: null };
}

export const CPU_INFO: CpuInfo = { model: 'AMD EPYC 7763 64-Core Processor', cores: 64, threads: 128, sockets: 1 };
export const MEMORY_INFO: MemoryInfo = { totalBytes: 512 * GiB, availableBytes: 480 * GiB };
export const DISK_INFO: DiskInfo = {
  dataDir: '/var/lib/provider',
  probedPath: '/var/lib/provider',
  mount: '/var/lib',
  filesystem: '/dev/nvme1n1',
  type: 'xfs',
  totalBytes: 3_840 * GiB,
  freeBytes: 3_000 * GiB,
};

export const CPU: Detected<CpuInfo> = { ok: true, ...CPU_INFO };
export const MEMORY: Detected<MemoryInfo> = { ok: true, ...MEMORY_INFO };
export const DISK: { ok: true } & DiskInfo = { ok: true, ...DISK_INFO };

export function anAllocatableGpu(overrides: Partial<AllocatableGpu> = {}): AllocatableGpu {
  const uuid = overrides.uuid ?? `GPU-${(overrides.gpuIndex ?? 0).toString().padStart(8, '0')}-0000-0000-0000-000000000000`;
  return { kind: 'gpu', uuid, gpuUuid: uuid, gpuIndex: 0, migIndex: null, model: 'NVIDIA GeForce RTX 4090', profile: null, memoryBytes: 24 * 2 ** 30, ...overrides };
}

export function anAllocatable(overrides: Partial<Allocatable> = {}): Allocatable {
  return {
    cpuMillis: 8000,
    memoryBytes: 32 * 2 ** 30,
    diskBytes: 500 * 2 ** 30,
    reserve: { cpuMillis: 1000, memoryBytes: 2 * 2 ** 30, diskBytes: 10 * 2 ** 30 },
    gpus: [],
    gpusNotOffered: [],
    ...overrides,
  };
}
