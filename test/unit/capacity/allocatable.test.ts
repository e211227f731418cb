import { computeAllocatable, type AllocatableInput } from '../../../src/capacity';
import {
  aGpu,
  aMigDevice,
  aPassthrough,
  CPU,
  DISK,
  dockerDetected,
  failed,
  gpusDetected,
  MEMORY,
  NO_NVIDIA_RUNTIME,
} from './builders';
import { GiB } from './fixtures';

const RESERVE = { cpuMillis: 1000, memoryBytes: 2 * GiB, diskBytes: 10 * GiB };

function input(overrides: Partial<AllocatableInput> = {}): AllocatableInput {
  return {
    cpu: CPU,
    memory: MEMORY,
    disk: DISK,
    gpus: gpusDetected(),
    docker: dockerDetected(),
    reserve: RESERVE,
    gpuOffer: 'all',
    gpuMode: 'runtime',
    ...overrides,
  };
}

describe('computeAllocatable: CPU, memory, disk', () => {
  it.each([
    ['subtracts the reserve from what was detected', input(), { cpuMillis: 127_000, memoryBytes: 510 * GiB, diskBytes: 2_990 * GiB }],
    [
      'never goes below zero when the reserve is larger than the machine',
      input({ reserve: { cpuMillis: 500_000, memoryBytes: 1024 * GiB, diskBytes: 10_000 * GiB } }),
      { cpuMillis: 0, memoryBytes: 0, diskBytes: 0 },
    ],
    [
      'offers everything with a zero reserve',
      input({ reserve: { cpuMillis: 0, memoryBytes: 0, diskBytes: 0 } }),
      { cpuMillis: 128_000, memoryBytes: 512 * GiB, diskBytes: 3_000 * GiB },
    ],
    [
      'offers nothing of a part that was not detected',
      input({ cpu: failed('HOST_PROBE_FAILED'), memory: failed('HOST_PROBE_TIMEOUT'), disk: failed('HOST_PROBE_FAILED') }),
      { cpuMillis: 0, memoryBytes: 0, diskBytes: 0 },
    ],
    [
      'counts disk from free space, not filesystem size',
      input({ disk: { ...DISK, totalBytes: 1000 * GiB, freeBytes: 15 * GiB } }),
      { cpuMillis: 127_000, memoryBytes: 510 * GiB, diskBytes: 5 * GiB },
    ],
  ])('%s', (_name, given, expected) => {
    const { allocatable } = computeAllocatable(given);
    expect({ cpuMillis: allocatable.cpuMillis, memoryBytes: allocatable.memoryBytes, diskBytes: allocatable.diskBytes }).toEqual(expected);
    expect(allocatable.reserve).toEqual(given.reserve);
  });
});

/** [gpu index or "index:mig", reason] for every GPU unit not offered; "index" or "index:mig" for those offered. */
function summary(given: AllocatableInput) {
  const { allocatable, warnings } = computeAllocatable(given);
  const id = (gpuIndex: number, migIndex: number | null) => (migIndex === null ? `${gpuIndex}` : `${gpuIndex}:${migIndex}`);
  return {
    offered: allocatable.gpus.map((unit) => id(unit.gpuIndex, unit.migIndex)),
    notOffered: allocatable.gpusNotOffered.map((unit) => [id(unit.gpuIndex, unit.migIndex), unit.reason]),
    warnings,
  };
}

const migGpu = aGpu({ index: 1, migDevices: [aMigDevice({ index: 0 }), aMigDevice({ index: 1, profile: '2g.10gb', uuid: 'MIG-11111111-1111-1111-1111-111111111111' })] });

describe('computeAllocatable: GPUs', () => {
  it.each<[string, Partial<AllocatableInput>, ReturnType<typeof summary>]>([
    ['offers every GPU when Docker has the nvidia runtime and gpu.offer is all', { gpus: gpusDetected(aGpu({ index: 0 }), aGpu({ index: 1 })) }, { offered: ['0', '1'], notOffered: [], warnings: [] }],
    [
      'reports GPUs as not offered when Docker has no NVIDIA runtime',
      { gpus: gpusDetected(aGpu({ index: 0 }), aGpu({ index: 1 })), docker: dockerDetected(NO_NVIDIA_RUNTIME) },
      { offered: [], notOffered: [['0', 'docker-has-no-nvidia-runtime'], ['1', 'docker-has-no-nvidia-runtime']], warnings: [] },
    ],
    [
      'reports GPUs as not offered when Docker is unreachable',
      { gpus: gpusDetected(aGpu({ index: 0 })), docker: failed('DOCKER_UNREACHABLE', 'no Docker socket at /var/run/docker.sock') },
      { offered: [], notOffered: [['0', 'docker-unreachable']], warnings: [] },
    ],
    [
      'offers GPUs through CDI when gpu.mode is cdi and a nvidia.com/gpu spec exists',
      {
        gpus: gpusDetected(aGpu({ index: 0 })),
        gpuMode: 'cdi',
        docker: dockerDetected(aPassthrough({ via: ['cdi'], nvidiaRuntime: false, cdi: { enabledInDocker: true, specDirs: ['/etc/cdi'], nvidiaSpecFiles: ['/etc/cdi/nvidia.yaml'] } })),
      },
      { offered: ['0'], notOffered: [], warnings: [] },
    ],
    [
      'offers GPUs in runtime mode when only the NVIDIA hook is installed',
      { gpus: gpusDetected(aGpu({ index: 0 })), docker: dockerDetected(aPassthrough({ via: ['hook'], nvidiaRuntime: false, nvidiaHook: '/usr/bin/nvidia-container-runtime-hook' })) },
      { offered: ['0'], notOffered: [], warnings: [] },
    ],
    [
      'refuses GPUs in cdi mode when Docker has only the nvidia runtime',
      { gpus: gpusDetected(aGpu({ index: 0 })), gpuMode: 'cdi' },
      { offered: [], notOffered: [['0', 'docker-has-no-nvidia-cdi-spec']], warnings: [] },
    ],
    [
      'offers only the GPUs gpu.offer lists, by index or UUID',
      { gpus: gpusDetected(aGpu({ index: 0 }), aGpu({ index: 1 }), aGpu({ index: 2 })), gpuOffer: [0, 'GPU-00000000-0000-0000-0000-000000000002'] },
      { offered: ['0', '2'], notOffered: [['1', 'not-selected']], warnings: [] },
    ],
    [
      'offers no GPU when gpu.offer is none',
      { gpus: gpusDetected(aGpu({ index: 0 })), gpuOffer: 'none' },
      { offered: [], notOffered: [['0', 'not-selected']], warnings: [] },
    ],
    [
      'offers the MIG devices of a MIG-enabled GPU instead of the card',
      { gpus: gpusDetected(aGpu({ index: 0 }), migGpu) },
      { offered: ['0', '1:0', '1:1'], notOffered: [['1', 'mig-enabled-offered-as-mig-devices']], warnings: [] },
    ],
    [
      'selects a single MIG device by its MIG UUID',
      { gpus: gpusDetected(aGpu({ index: 0 }), migGpu), gpuOffer: ['MIG-11111111-1111-1111-1111-111111111111'] },
      { offered: ['1:1'], notOffered: [['0', 'not-selected'], ['1', 'mig-enabled-offered-as-mig-devices'], ['1:0', 'not-selected']], warnings: [] },
    ],
    [
      'selects every MIG device of a GPU named by its index',
      { gpus: gpusDetected(aGpu({ index: 0 }), migGpu), gpuOffer: ['1'] },
      { offered: ['1:0', '1:1'], notOffered: [['0', 'not-selected'], ['1', 'mig-enabled-offered-as-mig-devices']], warnings: [] },
    ],
    [
      'does not offer a MIG device whose UUID is unknown',
      { gpus: gpusDetected(aGpu({ index: 0, migDevices: [aMigDevice({ index: 0, uuid: null })] })) },
      { offered: [], notOffered: [['0', 'mig-enabled-offered-as-mig-devices'], ['0:0', 'mig-device-uuid-unknown']], warnings: [] },
    ],
    [
      'reports a MIG-enabled GPU without MIG devices',
      { gpus: gpusDetected(aGpu({ index: 0, migDevices: [] })) },
      { offered: [], notOffered: [['0', 'mig-enabled-without-devices']], warnings: [] },
    ],
    [
      'reports MIG devices as not offered when Docker has no NVIDIA runtime',
      { gpus: gpusDetected(migGpu), docker: dockerDetected(NO_NVIDIA_RUNTIME) },
      { offered: [], notOffered: [['1', 'mig-enabled-offered-as-mig-devices'], ['1:0', 'docker-has-no-nvidia-runtime'], ['1:1', 'docker-has-no-nvidia-runtime']], warnings: [] },
    ],
    [
      'warns about gpu.offer entries that name no GPU here',
      { gpus: gpusDetected(aGpu({ index: 0 })), gpuOffer: [0, 7, 'GPU-deadbeef-0000-0000-0000-000000000000'] },
      { offered: ['0'], notOffered: [], warnings: ['gpu.offer names 7, which is not a GPU or MIG device on this machine', 'gpu.offer names GPU-deadbeef-0000-0000-0000-000000000000, which is not a GPU or MIG device on this machine'] },
    ],
    [
      'offers a GPU by its current MIG mode and warns about a pending change',
      { gpus: gpusDetected(aGpu({ index: 0, mig: { current: 'disabled', pending: 'enabled', devices: [] } })) },
      { offered: ['0'], notOffered: [], warnings: ['GPU 0 (GPU-00000000-0000-0000-0000-000000000000) has MIG enabled pending: it takes effect at the next GPU reset or reboot, and changes what this GPU offers'] },
    ],
    ['offers nothing and lists nothing when no GPU was detected', { gpus: failed('NVIDIA_SMI_NOT_FOUND') }, { offered: [], notOffered: [], warnings: [] }],
  ])('%s', (_name, overrides, expected) => {
    expect(summary(input(overrides))).toEqual(expected);
  });

  it('describes an offered MIG device with its parent GPU, profile and memory', () => {
    const { allocatable } = computeAllocatable(input({ gpus: gpusDetected(migGpu) }));
    expect(allocatable.gpus[1]).toEqual({
      kind: 'mig',
      uuid: 'MIG-11111111-1111-1111-1111-111111111111',
      gpuUuid: 'GPU-00000000-0000-0000-0000-000000000001',
      gpuIndex: 1,
      migIndex: 1,
      model: 'NVIDIA A100-SXM4-40GB',
      profile: '2g.10gb',
      memoryBytes: 20 * GiB,
    });
  });

  it('says in the detail how to fix a missing nvidia runtime when CDI would work', () => {
    const docker = dockerDetected(aPassthrough({ via: ['cdi'], nvidiaRuntime: false, cdi: { enabledInDocker: true, specDirs: ['/etc/cdi'], nvidiaSpecFiles: ['/etc/cdi/nvidia.yaml'] } }));
    const { allocatable } = computeAllocatable(input({ gpus: gpusDetected(aGpu()), docker }));
    expect(allocatable.gpusNotOffered[0]?.detail).toContain('set gpu.mode: cdi');
  });
});
