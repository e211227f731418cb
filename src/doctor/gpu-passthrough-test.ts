import type Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import { buildDeviceRequests, containerError, gpuEnv } from '../runtime';
import { withTimeout } from '../util/with-timeout';

export type PassthroughVerdict =
  | { ok: true; detail: string }
  /** `gpusBroken`: the GPU did not reach the container (NVML errors, the toolkit); false when the test itself could not run (no test image). */
  | { ok: false; gpusBroken: boolean; detail: string; fix: string | null };

/**
 * `nvidia-smi -L` in a throwaway container, given the GPU exactly as a lease would get it. Doctor
 * runs it once; the daemon at start, after Docker or driver events and on an interval, so that
 * "Failed to initialize NVML: Unknown Error" (the toolkit losing its devices after a
 * `systemctl daemon-reload`) takes the GPUs off sale before a tenant finds it.
 */
export async function testGpuPassthrough(
  docker: Docker,
  options: { image: string; uuid: string; gpu: Pick<ProviderConfig['gpu'], 'mode' | 'driverCapabilities'>; timeoutMs: number; signal?: AbortSignal },
): Promise<PassthroughVerdict> {
  const { mode, driverCapabilities } = options.gpu;
  const { uuid } = options;
  let container: Docker.Container | undefined;
  try {
    container = await docker.createContainer({
      Image: options.image,
      Cmd: ['nvidia-smi', '-L'],
      Env: gpuEnv([uuid], mode, driverCapabilities),
      Labels: { 'provider.doctor': 'true' },
      HostConfig: { DeviceRequests: buildDeviceRequests([uuid], mode), NetworkMode: 'none' },
    });
    await container.start();
    const running = container;
    const result = (await withTimeout('the GPU test container', options.timeoutMs, () => running.wait(), options.signal)) as { StatusCode: number };
    const output = (await container.logs({ stdout: true, stderr: true })).toString('utf8').replace(/[\x00-\x08]/g, '').trim();
    if (result.StatusCode !== 0) {
      return { ok: false, gpusBroken: true, detail: `nvidia-smi -L in a container exited ${result.StatusCode}: ${output.slice(0, 200)}`, fix: fixFor(output) };
    }
    if (!output.includes(uuid)) {
      return { ok: false, gpusBroken: true, detail: `the container does not see ${uuid}: ${output.slice(0, 200)}`, fix: 'check gpu.mode and the toolkit set-up' };
    }
    return { ok: true, detail: `a container given ${uuid} (${mode} mode) sees it` };
  } catch (err) {
    const mapped = containerError(err, 'CONTAINER_START_FAILED', 'GPU test container');
    if (mapped.code === 'IMAGE_NOT_FOUND' || /no such image/i.test(mapped.message)) {
      return { ok: false, gpusBroken: false, detail: `the test image ${options.image} is not on this machine`, fix: `docker pull ${options.image}` };
    }
    return { ok: false, gpusBroken: true, detail: mapped.message, fix: mapped.fix ?? fixFor(mapped.message) };
  } finally {
    await container?.remove({ force: true }).catch(() => undefined);
  }
}

function fixFor(output: string): string {
  // nvidia-container-toolkit#48: a daemon-reload makes systemd take back the device cgroup rules.
  return /Failed to initialize NVML: Unknown Error/i.test(output)
    ? 'the NVIDIA devices were taken from containers (often by `systemctl daemon-reload`): restart Docker, and set "exec-opts": ["native.cgroupdriver=cgroupfs"] or use CDI (gpu.mode: cdi) to stop it recurring'
    : 'check the NVIDIA Container Toolkit set-up (provisioners/nvidia/README.md)';
}
