import type { ProviderConfig } from '../config';
import { selectGpus, type GpuOffer } from './gpu-offer';
import type {
  Allocatable,
  AllocatableGpu,
  CpuInfo,
  Detected,
  DiskInfo,
  DockerInfo,
  Gpu,
  GpuInventory,
  GpuNotOffered,
  GpuNotOfferedReason,
  MemoryInfo,
  ResourceReserve,
} from './types';

export interface AllocatableInput {
  cpu: Detected<CpuInfo>;
  memory: Detected<MemoryInfo>;
  disk: Detected<DiskInfo>;
  gpus: Detected<GpuInventory>;
  docker: Detected<DockerInfo>;
  reserve: ResourceReserve;
  gpuOffer: GpuOffer;
  gpuMode: ProviderConfig['gpu']['mode'];
}

/**
 * What may be promised to leases: what was detected, less the host's reserve, never below zero.
 * A part that was not detected offers nothing. Disk counts the free space of the data dir's
 * filesystem, not its size: what others already wrote there cannot be sold again.
 *
 * A GPU is offered only when Docker can pass it through in the configured gpu.mode and gpu.offer
 * selects it. A MIG-enabled GPU is never offered whole (NVIDIA_VISIBLE_DEVICES with its GPU UUID
 * gives a container no usable device): its MIG devices are offered one by one instead. Whatever
 * is not offered is listed with the reason.
 */
export function computeAllocatable(input: AllocatableInput): { allocatable: Allocatable; warnings: string[] } {
  const { reserve } = input;
  const warnings: string[] = [];
  const gpus: AllocatableGpu[] = [];
  const gpusNotOffered: GpuNotOffered[] = [];

  if (input.gpus.ok) {
    const selection = selectGpus(input.gpuOffer);
    const blocked = dockerBlocker(input.docker, input.gpuMode);
    for (const gpu of input.gpus.devices) {
      if (gpu.mig.pending !== null && gpu.mig.current !== null && gpu.mig.pending !== gpu.mig.current) {
        // A MIG mode change takes effect at the next GPU reset: what is offered now will change then.
        warnings.push(`GPU ${gpu.index} (${gpu.uuid}) has MIG ${gpu.mig.pending} pending: it takes effect at the next GPU reset or reboot, and changes what this GPU offers`);
      }
      if (gpu.mig.current === 'enabled') {
        gpusNotOffered.push(
          gpu.mig.devices.length > 0
            ? notOffered(gpu, gpu.uuid, 'mig-enabled-offered-as-mig-devices', `MIG is on: its ${gpu.mig.devices.length} MIG device(s) are the units on offer, not the whole card`)
            : notOffered(gpu, gpu.uuid, 'mig-enabled-without-devices', 'MIG is on but no MIG devices exist: create them (`nvidia-smi mig -cgi <profiles> -C`) or turn MIG off (`nvidia-smi -i <index> -mig 0`)'),
        );
        for (const device of gpu.mig.devices) {
          const why: [GpuNotOfferedReason, string] | undefined =
            blocked ?? (!selection.migSelected(gpu, device.uuid) ? ['not-selected', notSelectedDetail(input.gpuOffer)] : undefined);
          if (why || device.uuid === null) {
            const [reason, detail] = why ?? ['mig-device-uuid-unknown', '`nvidia-smi -L` did not list this MIG device, so it cannot be named to Docker'];
            gpusNotOffered.push({ ...notOffered(gpu, device.uuid, reason, detail), kind: 'mig', migIndex: device.index });
            continue;
          }
          gpus.push({
            kind: 'mig',
            uuid: device.uuid,
            gpuUuid: gpu.uuid,
            gpuIndex: gpu.index,
            migIndex: device.index,
            model: gpu.model,
            profile: device.profile,
            memoryBytes: device.memory.totalBytes,
          });
        }
        continue;
      }
      const why: [GpuNotOfferedReason, string] | undefined =
        blocked ?? (!selection.gpuSelected(gpu) ? ['not-selected', notSelectedDetail(input.gpuOffer)] : undefined);
      if (why) {
        gpusNotOffered.push(notOffered(gpu, gpu.uuid, why[0], why[1]));
        continue;
      }
      gpus.push({
        kind: 'gpu',
        uuid: gpu.uuid,
        gpuUuid: gpu.uuid,
        gpuIndex: gpu.index,
        migIndex: null,
        model: gpu.model,
        profile: null,
        memoryBytes: gpu.memory.totalBytes,
      });
    }
    for (const entry of selection.unmatched(input.gpus.devices)) {
      warnings.push(`gpu.offer names ${entry}, which is not a GPU or MIG device on this machine`);
    }
  }

  return {
    allocatable: {
      cpuMillis: input.cpu.ok ? atLeastZero(input.cpu.threads * 1000 - reserve.cpuMillis) : 0,
      memoryBytes: input.memory.ok ? atLeastZero(input.memory.totalBytes - reserve.memoryBytes) : 0,
      diskBytes: input.disk.ok ? atLeastZero(input.disk.freeBytes - reserve.diskBytes) : 0,
      reserve,
      gpus,
      gpusNotOffered,
    },
    warnings,
  };
}

/** Why no GPU can reach a container through Docker in this gpu.mode, or undefined when one can. */
function dockerBlocker(docker: Detected<DockerInfo>, mode: AllocatableInput['gpuMode']): [GpuNotOfferedReason, string] | undefined {
  if (!docker.ok) return ['docker-unreachable', `Docker could not be read: ${docker.reason}`];
  const passthrough = docker.gpuPassthrough;
  // The runtime mode asks for GPUs as `--gpus` does (DeviceRequests): the nvidia runtime or the
  // NVIDIA hook alone serves that.
  if (mode === 'runtime' && !passthrough.via.includes('runtime') && !passthrough.via.includes('hook')) {
    const detail = passthrough.via.includes('cdi')
      ? 'Docker has no nvidia runtime, but CDI can pass GPUs through: set gpu.mode: cdi'
      : (passthrough.reason ?? 'Docker has no nvidia runtime');
    return ['docker-has-no-nvidia-runtime', detail];
  }
  if (mode === 'cdi' && !passthrough.via.includes('cdi')) {
    const detail = passthrough.cdi.enabledInDocker
      ? `no nvidia.com/gpu CDI spec in ${passthrough.cdi.specDirs.join(', ')}: run \`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml\``
      : 'this Docker engine has CDI off: Docker >= 25 with the "cdi" feature on in daemon.json is needed';
    return ['docker-has-no-nvidia-cdi-spec', passthrough.via.length > 0 ? `${detail}; or set gpu.mode: runtime, which this engine serves` : detail];
  }
  return undefined;
}

function notSelectedDetail(offer: GpuOffer): string {
  return offer === 'none' ? 'gpu.offer is none' : `gpu.offer lists ${Array.isArray(offer) ? offer.join(', ') : offer}, not this one`;
}

function notOffered(gpu: Gpu, uuid: string | null, reason: GpuNotOfferedReason, detail: string): GpuNotOffered {
  return { kind: 'gpu', uuid, gpuIndex: gpu.index, migIndex: null, model: gpu.model, reason, detail };
}

function atLeastZero(value: number): number {
  return Math.max(0, value);
}
