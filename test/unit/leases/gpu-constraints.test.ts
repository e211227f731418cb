import { gpuFilter, versionAtLeast } from '../../../src/leases/gpu-constraints';
import type { AllocatableGpu } from '../../../src/capacity';

const GiB = 2 ** 30;
const unit = (overrides: Partial<AllocatableGpu>): AllocatableGpu => ({
  kind: 'gpu', uuid: 'GPU-0', gpuUuid: 'GPU-0', gpuIndex: 0, migIndex: null, model: 'NVIDIA A100-SXM4-40GB', profile: null, memoryBytes: 40 * GiB, ...overrides,
});
const units = [
  unit({}),
  unit({ kind: 'mig', uuid: 'MIG-1', gpuUuid: 'GPU-1', gpuIndex: 1, migIndex: 0, profile: '3g.20gb', memoryBytes: 20 * GiB }),
  unit({ kind: 'mig', uuid: 'MIG-2', gpuUuid: 'GPU-1', gpuIndex: 1, migIndex: 1, profile: '1g.5gb', memoryBytes: 5 * GiB }),
];
const facts = { driverVersion: '535.129.03', cudaVersion: '12.2' };
const refused = (request: object) => {
  try {
    gpuFilter({ count: 1, ...request }, units, facts);
    return undefined;
  } catch (err) {
    return (err as { code: string; input: string }).input;
  }
};

describe('gpu constraints of a quote', () => {
  it('compares dotted versions number by number', () => {
    expect(versionAtLeast('535.129.03', '535.54')).toBe(true);
    expect(versionAtLeast('12.2', '12.10')).toBe(false);
    expect(versionAtLeast('13.0', '13')).toBe(true);
  });

  it.each([
    [{ model: 'H100' }, 'resources.gpus.model'],
    [{ migProfile: '2g.10gb' }, 'resources.gpus.migProfile'],
    [{ minMemoryBytes: 41 * GiB }, 'resources.gpus.minMemoryBytes'],
    [{ minMemory: '48GiB' }, 'resources.gpus.minMemory'],
    [{ minDriverVersion: '550' }, 'resources.gpus.minDriverVersion'],
    [{ minCudaVersion: '12.4' }, 'resources.gpus.minCudaVersion'],
    [{ migProfile: '1g.5gb', minMemory: '10GiB' }, 'resources.gpus.minMemory'],
  ])('refuses %j naming %s', (request, field) => {
    expect(refused(request)).toBe(field);
  });

  it('accepts only the units that meet every constraint', () => {
    const accept = gpuFilter({ count: 1, model: 'A100', minMemory: '10GiB', minCudaVersion: '12.2', minDriverVersion: '535.129' }, units, facts);
    expect(units.filter(accept).map((u) => u.uuid)).toEqual(['GPU-0', 'MIG-1']);
    expect(units.filter(gpuFilter({ count: 1, migProfile: '3G.20GB' }, units, facts)).map((u) => u.uuid)).toEqual(['MIG-1']);
  });

  it('refuses two of a kind where the machine has one', () => {
    expect(() => gpuFilter({ count: 2, migProfile: '3g.20gb' }, units, facts)).toThrow(/resources.gpus.migProfile/);
  });
});
