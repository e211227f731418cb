import type { ErrorCode } from '../errors';
import type { SandboxReport } from '../runtime';

/**
 * The capacity report: what `provider capacity --json` prints and what the daemon advertises from.
 *
 * The JSON form is a public interface (operators script against it, the marketplace metadata is
 * built from it): fields are only ever added within a schemaVersion; a rename or removal bumps it.
 * Sizes are bytes, CPU is thousandths of a core, percentages are 0-100, absent readings are null.
 *
 * ```text
 * {
 *   schemaVersion: 1,
 *   detectedAt: "2026-11-24T20:30:00.000Z",
 *   dataDir: "/var/lib/provider",
 *   cpu:    { ok: true, model, cores, threads, sockets }                                | Failure,
 *   memory: { ok: true, totalBytes, availableBytes }                                    | Failure,
 *   disk:   { ok: true, dataDir, probedPath, mount, filesystem, type, totalBytes, freeBytes } | Failure,
 *   gpus:   { ok: true, driverVersion, cudaVersion, devices: Gpu[] }                    | Failure,
 *   docker: { ok: true, engineVersion, apiVersion, os, osType, architecture, kernelVersion,
 *             cgroupVersion, cgroupDriver, storageDriver, runtimes, defaultRuntime,
 *             gpuPassthrough: { possible, via, reasonCode, reason, nvidiaRuntime, nvidiaHook,
 *                               cdi: { enabledInDocker, specDirs, nvidiaSpecFiles } },
 *             sandbox: { setting, runsc, runscGpu, cpuLeases, gpuLeases, why, warning, fix } } | Failure,
 *   allocatable: { cpuMillis, memoryBytes, diskBytes, reserve: {cpuMillis, memoryBytes, diskBytes},
 *                  gpus: AllocatableGpu[], gpusNotOffered: GpuNotOffered[] },
 *   notDetected: [{ part: "cpu"|"memory"|"disk"|"gpus"|"docker", code, reason, fix }],
 *   warnings: string[]
 * }
 * Failure        = { ok: false, code, reason, fix }        (code: an ErrorCode, e.g. NVIDIA_SMI_NOT_FOUND)
 * Gpu            = { index, uuid, model, busId, driverVersion, cudaVersion,
 *                    memory: { totalBytes, usedBytes, freeBytes, reservedBytes },
 *                    utilization: { gpuPercent, memoryPercent },
 *                    mig: { current, pending, devices: MigDevice[] } }   (current/pending: "enabled"|"disabled"|null)
 * MigDevice      = { index, uuid, profile, gpuInstanceId, computeInstanceId,
 *                    memory: { totalBytes, usedBytes, freeBytes } }
 * AllocatableGpu = { kind: "gpu"|"mig", uuid, gpuUuid, gpuIndex, migIndex, model, profile, memoryBytes }
 * GpuNotOffered  = { kind: "gpu"|"mig", uuid, gpuIndex, migIndex, model, reason, detail }
 * sandbox        : setting is runtime.sandbox ("auto"|"runsc"|"runc"); runsc: Docker has a runtime
 *                  named runsc; cpuLeases/gpuLeases: "runsc"|"runc", null when such leases cannot
 *                  run; warning/fix: set when strangers' code would run under runc alone
 * ```
 */
export const CAPACITY_SCHEMA_VERSION = 1 as const;

/** A part that could not be read, and why. Never thrown: carried in the report. */
export interface ProbeFailure {
  ok: false;
  code: ErrorCode;
  /** What went wrong, as one sentence an operator can act on. */
  reason: string;
  /** What to do about it, when there is something to do. */
  fix: string | null;
}

/** Each part of the report is either its readings or the failure that stopped them. */
export type Detected<T> = ({ ok: true } & T) | ProbeFailure;

export interface CpuInfo {
  /** As the OS names it, e.g. "AMD EPYC 7763 64-Core Processor". */
  model: string;
  /** Physical cores. */
  cores: number;
  /** Logical CPUs (hardware threads): what a cgroup CPU quota is counted in. */
  threads: number;
  sockets: number;
}

export interface MemoryInfo {
  totalBytes: number;
  /** What the kernel could hand out now without swapping (MemAvailable). */
  availableBytes: number;
}

export interface DiskInfo {
  /** The configured data directory. */
  dataDir: string;
  /** The directory actually measured: dataDir, or its nearest existing ancestor, symlinks resolved. */
  probedPath: string;
  /** Mount point of the filesystem holding it. */
  mount: string;
  /** Device or source of that filesystem, e.g. /dev/nvme0n1p2. */
  filesystem: string;
  type: string;
  totalBytes: number;
  /** Space an unprivileged writer can still use (df "Avail"). */
  freeBytes: number;
}

export type MigMode = 'enabled' | 'disabled' | null;

export interface MigDevice {
  /** The MIG device index within its GPU: `Device N` in `nvidia-smi -L`, `<index>` in `-q -x`. */
  index: number;
  /** `MIG-...`; null when `nvidia-smi -L` could not be read. */
  uuid: string | null;
  /** Profile such as `3g.20gb`; only `nvidia-smi -L` names it. */
  profile: string | null;
  gpuInstanceId: number | null;
  computeInstanceId: number | null;
  memory: { totalBytes: number | null; usedBytes: number | null; freeBytes: number | null };
}

/** The PCIe link as the GPU reports it now (an idle GPU may train down: current below max). */
export interface PcieLink {
  currentGen: number | null;
  maxGen: number | null;
  currentWidth: number | null;
  maxWidth: number | null;
}

/** One read of what the health rules judge; null or false where nvidia-smi says N/A. */
export interface GpuHealthReading {
  temperatureCelsius: number | null;
  /** Uncorrectable ECC errors since the driver loaded (DRAM + SRAM), or null without ECC. */
  eccUncorrectableVolatile: number | null;
  pendingRetirement: boolean;
  remapPending: boolean;
  remapFailure: boolean;
  /** Active clock event (throttle) reasons, e.g. `hw_thermal_slowdown`, `gpu_idle`. */
  activeClockEvents: string[];
  /** R550+: what the driver says the GPU needs (`None`, `GPU Reset`, `Node Reboot`...). */
  recoveryAction: string | null;
}

export interface Gpu {
  /** nvidia-smi's index (`-i N`, `NVIDIA_VISIBLE_DEVICES=N`). */
  index: number;
  uuid: string;
  model: string;
  busId: string | null;
  driverVersion: string | null;
  cudaVersion: string | null;
  memory: { totalBytes: number | null; usedBytes: number | null; freeBytes: number | null; reservedBytes: number | null };
  utilization: { gpuPercent: number | null; memoryPercent: number | null };
  pcie: PcieLink;
  mig: { current: MigMode; pending: MigMode; devices: MigDevice[] };
}

export interface GpuInventory {
  driverVersion: string | null;
  cudaVersion: string | null;
  devices: Gpu[];
}

export type GpuPassthroughReasonCode = 'docker-has-no-nvidia-runtime' | 'docker-has-no-nvidia-cdi-spec';

export interface GpuPassthrough {
  /** True when the nvidia runtime, the NVIDIA hook or a CDI spec can give a container a GPU. */
  possible: boolean;
  via: ('runtime' | 'hook' | 'cdi')[];
  reasonCode: GpuPassthroughReasonCode | null;
  /** Why it is not possible, with the fix; null when it is. */
  reason: string | null;
  /** `nvidia` is among `docker info`'s Runtimes (or is the default runtime). */
  nvidiaRuntime: boolean;
  /** Path of nvidia-container-runtime-hook, which serves `--gpus` without the nvidia runtime; null when absent. */
  nvidiaHook: string | null;
  cdi: {
    /** Docker reports a non-empty CDISpecDirs (Docker >= 25 with CDI on). */
    enabledInDocker: boolean;
    specDirs: string[];
    /** CDI spec files declaring kind nvidia.com/gpu. */
    nvidiaSpecFiles: string[];
  };
}

export interface DockerInfo {
  engineVersion: string | null;
  apiVersion: string | null;
  os: string | null;
  osType: string | null;
  architecture: string | null;
  kernelVersion: string | null;
  /** 1 or 2; null when the engine does not say (Docker < 20.10). */
  cgroupVersion: 1 | 2 | null;
  cgroupDriver: string | null;
  storageDriver: string | null;
  runtimes: string[];
  defaultRuntime: string | null;
  gpuPassthrough: GpuPassthrough;
  /** The OCI runtime leases get (runtime.sandbox against the engine's runtimes), and why. */
  sandbox: SandboxReport;
}

export type GpuNotOfferedReason =
  | 'docker-unreachable'
  | 'docker-has-no-nvidia-runtime'
  | 'docker-has-no-nvidia-cdi-spec'
  | 'not-selected'
  | 'mig-enabled-offered-as-mig-devices'
  | 'mig-enabled-without-devices'
  | 'mig-device-uuid-unknown';

/** One unit a lease can be given: a whole GPU, or one MIG device of a MIG-enabled GPU. */
export interface AllocatableGpu {
  kind: 'gpu' | 'mig';
  /** What NVIDIA_VISIBLE_DEVICES / the CDI device name takes: `GPU-...` or `MIG-...`. */
  uuid: string;
  /** The physical GPU it is on (equal to uuid for a whole GPU). */
  gpuUuid: string;
  gpuIndex: number;
  migIndex: number | null;
  model: string;
  /** MIG profile, e.g. `3g.20gb`; null for a whole GPU. */
  profile: string | null;
  memoryBytes: number | null;
}

export interface GpuNotOffered {
  kind: 'gpu' | 'mig';
  /** Null only for a MIG device whose UUID could not be read. */
  uuid: string | null;
  gpuIndex: number;
  migIndex: number | null;
  model: string;
  reason: GpuNotOfferedReason;
  detail: string;
}

export interface ResourceReserve {
  cpuMillis: number;
  memoryBytes: number;
  diskBytes: number;
}

export interface Allocatable {
  cpuMillis: number;
  memoryBytes: number;
  diskBytes: number;
  reserve: ResourceReserve;
  gpus: AllocatableGpu[];
  gpusNotOffered: GpuNotOffered[];
}

export type CapacityPart = 'cpu' | 'memory' | 'disk' | 'gpus' | 'docker';

export interface NotDetected {
  part: CapacityPart;
  code: ErrorCode;
  reason: string;
  fix: string | null;
}

/** One GPU's health as one read judges it (the daemon's monitor also counts Xids and waits out recovery). */
export interface GpuHealthLine {
  index: number;
  uuid: string;
  healthy: boolean;
  /** Why not; null when healthy. */
  reason: string | null;
  temperatureCelsius: number | null;
}

export interface CapacityReport {
  schemaVersion: typeof CAPACITY_SCHEMA_VERSION;
  detectedAt: string;
  dataDir: string;
  cpu: Detected<CpuInfo>;
  memory: Detected<MemoryInfo>;
  disk: Detected<DiskInfo>;
  gpus: Detected<GpuInventory>;
  docker: Detected<DockerInfo>;
  allocatable: Allocatable;
  notDetected: NotDetected[];
  warnings: string[];
  /** Each GPU's health by gpu.health's rules, from this one read; absent when GPUs were not read. */
  gpuHealth?: GpuHealthLine[];
}
