import type { ContainerCreateOptions } from 'dockerode';
import { ProviderError } from '../errors';

export type GpuMode = 'runtime' | 'cdi';
export type DeviceRequest = NonNullable<NonNullable<ContainerCreateOptions['HostConfig']>['DeviceRequests']>[number];

/** `GPU-<uuid>` or a MIG instance `MIG-<uuid>` (or the older `MIG-GPU-<uuid>/<gi>/<ci>`), as nvidia-smi -L prints them. */
const GPU_ID = /^(?:GPU-[0-9a-fA-F-]{36}|MIG-[0-9a-fA-F-]{36}|MIG-GPU-[0-9a-fA-F-]{36}\/\d+\/\d+)$/;

export function assertGpuUuids(uuids: readonly string[]): void {
  const bad = uuids.find((id) => !GPU_ID.test(id));
  if (bad !== undefined) {
    throw new ProviderError('ALLOCATION_INVALID', `"${bad}" is not a GPU or MIG device UUID`, {
      input: bad,
      fix: 'allocate GPUs by the UUIDs nvidia-smi -L prints (GPU-... or MIG-...)',
    });
  }
  if (new Set(uuids).size !== uuids.length) {
    throw new ProviderError('ALLOCATION_INVALID', 'the same GPU is allocated twice', { input: uuids });
  }
}

/**
 * The devices a lease's container asks the engine for. Always by UUID, never by `Count`: a count
 * lets the driver pick any GPU, including one another lease holds.
 * - runtime mode: the NVIDIA container toolkit's device driver (`--gpus device=<uuid>`);
 * - cdi mode (Docker >= 25 with CDI enabled): fully qualified CDI names, as
 *   `docker run --device nvidia.com/gpu=<uuid>` sends them.
 */
export function buildDeviceRequests(uuids: readonly string[], mode: GpuMode): DeviceRequest[] {
  if (uuids.length === 0) return [];
  assertGpuUuids(uuids);
  if (mode === 'cdi') {
    return [{ Driver: 'cdi', DeviceIDs: uuids.map((id) => `nvidia.com/gpu=${id}`), Capabilities: [['cdi']] }];
  }
  return [{ Driver: 'nvidia', DeviceIDs: [...uuids], Capabilities: [['gpu']] }];
}

/**
 * NVIDIA_* variables of the container. A lease with no GPU gets NVIDIA_VISIBLE_DEVICES=void so an
 * image that sets `all` (every CUDA base image does) sees no GPU even where nvidia is the default
 * runtime. In cdi mode the devices come from the CDI spec, so the legacy hook is told `void` too.
 */
export function gpuEnv(uuids: readonly string[], mode: GpuMode, driverCapabilities: string): string[] {
  if (uuids.length === 0) return ['NVIDIA_VISIBLE_DEVICES=void'];
  const visible = mode === 'cdi' ? 'void' : uuids.join(',');
  return [`NVIDIA_VISIBLE_DEVICES=${visible}`, `NVIDIA_DRIVER_CAPABILITIES=${driverCapabilities}`];
}
