import { CapacityDetector, formatCapacityText, parseNvidiaSmiList, parseNvidiaSmiXml, toInventory } from '../../../src/capacity';
import { ProviderError } from '../../../src/errors';
import { aDockerInfo, CPU_INFO, DISK_INFO, MEMORY_INFO, NO_NVIDIA_RUNTIME } from './builders';
import { GiB, nvidiaSmiFixture } from './fixtures';
import { manualClock } from '../../../src/util/clock';

async function textFor(options: { machine?: string; dockerFails?: boolean; passthrough?: boolean }): Promise<string> {
  const gpus = options.machine
    ? { query: async () => ({ inventory: toInventory(parseNvidiaSmiXml(nvidiaSmiFixture(options.machine!).xml), parseNvidiaSmiList(nvidiaSmiFixture(options.machine!).list)), warnings: [] }) }
    : { query: async () => Promise.reject(new ProviderError('NVIDIA_SMI_NOT_FOUND', 'nvidia-smi not found (not on PATH)', { fix: 'install the NVIDIA driver' })) };
  const docker = aDockerInfo(options.passthrough ? undefined : NO_NVIDIA_RUNTIME);
  const detector = new CapacityDetector(
    {
      host: { cpu: async () => CPU_INFO, memory: async () => MEMORY_INFO, disk: async () => DISK_INFO },
      gpus,
      docker: { probe: async () => (options.dockerFails ? Promise.reject(new ProviderError('DOCKER_UNREACHABLE', 'no Docker socket at /var/run/docker.sock')) : docker) },
      clock: manualClock(0),
    },
    { dataDir: '/var/lib/provider', reserve: { cpuMillis: 1000, memoryBytes: 2 * GiB, diskBytes: 10 * GiB }, gpuOffer: 'all', gpuMode: 'runtime' },
  );
  return formatCapacityText(await detector.detect());
}

describe('formatCapacityText', () => {
  it('shows the machine, the allocatable table and a not-detected section on a CPU-only host', async () => {
    const text = await textFor({});
    expect(text).toContain('CPU     AMD EPYC 7763 64-Core Processor: 64 cores, 128 threads, 1 socket');
    expect(text).toContain('Memory  512.0 GiB total, 480.0 GiB available');
    expect(text).toContain('Disk    2.9 TiB free of 3.8 TiB on /var/lib (/dev/nvme1n1, xfs) holding /var/lib/provider');
    expect(text).toContain('GPU passthrough: no: Docker has no nvidia runtime');
    expect(text).toMatch(/\n {8}sandbox: leases without GPUs run under runsc \(runtime.sandbox is auto and Docker has runsc\); GPU leases run under runc/);
    expect(text).not.toContain('sandbox WARNING');
    expect(text).toMatch(/RESOURCE +DETECTED +RESERVE +ALLOCATABLE\n +cpu +128000m +1000m +127000m\n +memory +512.0 GiB +2.0 GiB +510.0 GiB/);
    expect(text).toContain('Not detected\n  gpus: nvidia-smi not found (not on PATH) [NVIDIA_SMI_NOT_FOUND]\n    fix: install the NVIDIA driver');
  });

  it('lists GPUs with their MIG devices, and every unit not offered with its reason', async () => {
    const text = await textFor({ machine: 'a100-mig-535' });
    expect(text).toMatch(/0 +NVIDIA A100-SXM4-40GB +GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77 +40.0 GiB +57.0 MiB +- +on +00000000:07:00.0/);
    expect(text).toMatch(/0:0 +MIG 3g.20gb +MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f +19.5 GiB/);
    expect(text).toMatch(/GPUs not offered\n  mig-enabled-offered-as-mig-devices: MIG is on: .*\n    GPU 0 +NVIDIA A100-SXM4-40GB +GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77\n/);
    // The shared reason is said once, with every unit it covers under it.
    expect(text).toMatch(
      /\n  docker-has-no-nvidia-runtime: Docker has no nvidia runtime.*\n    MIG 0:0 +NVIDIA A100-SXM4-40GB +MIG-c6d4f1ef-\S+\n    MIG 0:1 .*\n    MIG 0:2 .*\n    GPU 1 +NVIDIA A100-SXM4-40GB +GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30\n/,
    );
  });

  it('lists the GPUs offered when Docker can pass them through', async () => {
    const text = await textFor({ machine: 'a100-mig-535', passthrough: true });
    expect(text).toMatch(/GPUs offered\n +IDX +KIND +MODEL +UUID +MEMORY\n +0:0 +MIG 3g.20gb +NVIDIA A100-SXM4-40GB +MIG-c6d4f1ef/);
    expect(text).toMatch(/\n +1 +GPU +NVIDIA A100-SXM4-40GB +GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30 +40.0 GiB/);
  });

  it('says Docker is not reachable and why', async () => {
    const text = await textFor({ dockerFails: true });
    expect(text).toContain('Docker  not reachable (see below)');
    expect(text).toContain('  docker: no Docker socket at /var/run/docker.sock [DOCKER_UNREACHABLE]');
  });
});
