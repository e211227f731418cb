import type { ProviderConfig } from '../config';
import type { ErrorCode } from '../errors';
import type { Clock } from '../util/clock';
import { computeAllocatable } from './allocatable';
import { judgeGpu, reasonOf, type GpuHealthRules } from './gpu-health';
import { failureFrom } from './probe-failure';
import type { NvidiaSmiResult } from './nvidia-smi';
import {
  CAPACITY_SCHEMA_VERSION,
  type CapacityPart,
  type CapacityReport,
  type CpuInfo,
  type Detected,
  type DiskInfo,
  type DockerInfo,
  type Gpu,
  type GpuHealthLine,
  type GpuHealthReading,
  type MemoryInfo,
  type NotDetected,
  type ResourceReserve,
} from './types';

/** The probes the detector composes; NvidiaSmi, DockerProbe and HostProbe implement them. */
export interface GpuSource {
  query(signal?: AbortSignal): Promise<NvidiaSmiResult>;
}
export interface DockerSource {
  probe(signal?: AbortSignal): Promise<DockerInfo>;
}
export interface HostSource {
  cpu(signal?: AbortSignal): Promise<CpuInfo>;
  memory(signal?: AbortSignal): Promise<MemoryInfo>;
  disk(dataDir: string, signal?: AbortSignal): Promise<DiskInfo>;
}

export interface CapacitySettings {
  dataDir: string;
  reserve: ResourceReserve;
  gpuOffer: ProviderConfig['gpu']['offer'];
  gpuMode: ProviderConfig['gpu']['mode'];
  gpuHealth?: GpuHealthRules;
}

/** The capacity settings of a loaded config. */
export function capacitySettings(config: ProviderConfig): CapacitySettings {
  return { dataDir: config.dataDir, reserve: { ...config.reserve }, gpuOffer: config.gpu.offer, gpuMode: config.gpu.mode, gpuHealth: config.gpu.health };
}

/**
 * Runs every probe at once and assembles the report. A part that fails is reported as
 * `{ ok: false, code, reason }` and listed under notDetected, and the rest still answers: the only
 * rejection is the signal's reason, when the caller aborts (daemon shutdown).
 */
export class CapacityDetector {
  constructor(
    private readonly probes: { host: HostSource; gpus: GpuSource; docker: DockerSource; clock: Clock },
    private readonly settings: CapacitySettings,
  ) {}

  async detect(signal?: AbortSignal): Promise<CapacityReport> {
    const { host, gpus, docker, clock } = this.probes;
    const { dataDir } = this.settings;
    const [cpu, memory, disk, gpuResult, dockerInfo] = await Promise.all([
      settle(() => host.cpu(signal), 'HOST_PROBE_FAILED'),
      settle(() => host.memory(signal), 'HOST_PROBE_FAILED'),
      settle(() => host.disk(dataDir, signal), 'HOST_PROBE_FAILED'),
      settle(() => gpus.query(signal), 'NVIDIA_SMI_FAILED'),
      settle(() => docker.probe(signal), 'DOCKER_UNREACHABLE'),
    ]);
    signal?.throwIfAborted();
    const gpuInventory = gpuResult.ok ? ({ ok: true, ...gpuResult.inventory } as const) : gpuResult;
    const { allocatable, warnings } = computeAllocatable({
      cpu,
      memory,
      disk,
      gpus: gpuInventory,
      docker: dockerInfo,
      reserve: this.settings.reserve,
      gpuOffer: this.settings.gpuOffer,
      gpuMode: this.settings.gpuMode,
    });
    const parts: [CapacityPart, Detected<object>][] = [
      ['cpu', cpu],
      ['memory', memory],
      ['disk', disk],
      ['gpus', gpuInventory],
      ['docker', dockerInfo],
    ];
    const notDetected: NotDetected[] = parts.flatMap(([part, result]) =>
      result.ok ? [] : [{ part, code: result.code, reason: result.reason, fix: result.fix }],
    );
    return {
      schemaVersion: CAPACITY_SCHEMA_VERSION,
      detectedAt: new Date(clock.now()).toISOString(),
      dataDir,
      cpu,
      memory,
      disk,
      gpus: gpuInventory,
      docker: dockerInfo,
      allocatable,
      notDetected,
      warnings: [...(gpuResult.ok ? gpuResult.warnings : []), ...warnings],
      ...(gpuResult.ok && gpuResult.readings && this.settings.gpuHealth ? { gpuHealth: healthLines(gpuResult.inventory.devices, gpuResult.readings, this.settings.gpuHealth) } : {}),
    };
  }
}

/** True when not one part could be read: the only case `provider capacity` exits non-zero. */
export function nothingDetected(report: CapacityReport): boolean {
  return report.notDetected.length === 5;
}

function healthLines(devices: readonly Gpu[], readings: Record<string, GpuHealthReading>, rules: GpuHealthRules): GpuHealthLine[] {
  return devices.map((gpu) => {
    const reading = readings[gpu.uuid] ?? null;
    const findings = judgeGpu({ reading, xids: [] }, undefined, rules);
    return { index: gpu.index, uuid: gpu.uuid, healthy: findings.length === 0, reason: findings.length === 0 ? null : reasonOf(findings), temperatureCelsius: reading?.temperatureCelsius ?? null };
  });
}

async function settle<T extends object>(probe: () => Promise<T>, fallback: ErrorCode): Promise<Detected<T>> {
  try {
    return { ok: true, ...(await probe()) };
  } catch (err) {
    return failureFrom(err, fallback);
  }
}
