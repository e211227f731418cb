import { CapacityDetector, nothingDetected, type DockerSource, type GpuSource, type HostSource } from '../../../src/capacity';
import { ProviderError } from '../../../src/errors';
import { aDockerInfo, aGpu, CPU_INFO, DISK_INFO, MEMORY_INFO, NO_NVIDIA_RUNTIME } from './builders';
import { GiB } from './fixtures';
import { manualClock } from '../../../src/util/clock';

const workingHost: HostSource = { cpu: async () => CPU_INFO, memory: async () => MEMORY_INFO, disk: async () => DISK_INFO };
const workingGpus: GpuSource = {
  query: async () => ({ inventory: { driverVersion: '535.129.03', cudaVersion: '12.2', devices: [aGpu()] }, warnings: ['MIG device UUIDs unknown'] }),
};
const workingDocker: DockerSource = { probe: async () => aDockerInfo(NO_NVIDIA_RUNTIME) };
const clock = manualClock(Date.UTC(2026, 10, 24, 20, 30));
const settings = { dataDir: '/var/lib/provider', reserve: { cpuMillis: 1000, memoryBytes: 2 * GiB, diskBytes: 10 * GiB }, gpuOffer: 'all' as const, gpuMode: 'runtime' as const };

function detector(parts: { host?: HostSource; gpus?: GpuSource; docker?: DockerSource } = {}): CapacityDetector {
  return new CapacityDetector({ host: workingHost, gpus: workingGpus, docker: workingDocker, clock, ...parts }, settings);
}

describe('CapacityDetector', () => {
  it('assembles every part, the allocatable capacity and the warnings into a schemaVersion 1 report', async () => {
    const report = await detector().detect();
    expect(report).toMatchObject({
      schemaVersion: 1,
      detectedAt: '2026-11-24T20:30:00.000Z',
      dataDir: '/var/lib/provider',
      cpu: { ok: true, threads: 128 },
      memory: { ok: true, totalBytes: 512 * GiB },
      disk: { ok: true, mount: '/var/lib' },
      gpus: { ok: true, driverVersion: '535.129.03', devices: [{ uuid: 'GPU-00000000-0000-0000-0000-000000000000' }] },
      docker: { ok: true, storageDriver: 'overlay2' },
      allocatable: { cpuMillis: 127_000, gpus: [], gpusNotOffered: [{ reason: 'docker-has-no-nvidia-runtime' }] },
      notDetected: [],
      warnings: ['MIG device UUIDs unknown'],
    });
    expect(nothingDetected(report)).toBe(false);
  });

  it('answers with what it could read when nvidia-smi and Docker fail, listing why', async () => {
    const report = await detector({
      gpus: { query: async () => Promise.reject(new ProviderError('NVIDIA_SMI_NOT_FOUND', 'nvidia-smi not found', { fix: 'install the driver' })) },
      docker: { probe: async () => Promise.reject(new ProviderError('DOCKER_UNREACHABLE', 'no Docker socket at /nope')) },
    }).detect();
    expect(report.cpu.ok && report.memory.ok && report.disk.ok).toBe(true);
    expect(report.gpus).toEqual({ ok: false, code: 'NVIDIA_SMI_NOT_FOUND', reason: 'nvidia-smi not found', fix: 'install the driver' });
    expect(report.notDetected).toEqual([
      { part: 'gpus', code: 'NVIDIA_SMI_NOT_FOUND', reason: 'nvidia-smi not found', fix: 'install the driver' },
      { part: 'docker', code: 'DOCKER_UNREACHABLE', reason: 'no Docker socket at /nope', fix: null },
    ]);
    expect(nothingDetected(report)).toBe(false);
  });

  it('never throws, even when every probe throws untyped errors, and then says nothing was detected', async () => {
    const broken = async () => Promise.reject(new TypeError('boom'));
    const report = await detector({
      host: { cpu: broken, memory: broken, disk: broken },
      gpus: { query: broken },
      docker: { probe: broken },
    }).detect();
    expect(report.notDetected.map((missing) => [missing.part, missing.code, missing.reason])).toEqual([
      ['cpu', 'HOST_PROBE_FAILED', 'boom'],
      ['memory', 'HOST_PROBE_FAILED', 'boom'],
      ['disk', 'HOST_PROBE_FAILED', 'boom'],
      ['gpus', 'NVIDIA_SMI_FAILED', 'boom'],
      ['docker', 'DOCKER_UNREACHABLE', 'boom'],
    ]);
    expect(report.allocatable).toMatchObject({ cpuMillis: 0, memoryBytes: 0, diskBytes: 0, gpus: [], gpusNotOffered: [] });
    expect(nothingDetected(report)).toBe(true);
  });

  it('rejects with the abort reason when the caller aborts, instead of reporting parts as missing', async () => {
    const controller = new AbortController();
    const hanging = (signal?: AbortSignal) =>
      new Promise<never>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
    const detecting = detector({ docker: { probe: hanging } }).detect(controller.signal);
    controller.abort(new Error('shutting down'));
    await expect(detecting).rejects.toThrow('shutting down');
  });

  it('produces JSON that survives a round trip unchanged', async () => {
    const report = await detector().detect();
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });
});
