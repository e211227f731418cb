import { selectGpus } from '../../../src/capacity';
import { aGpu, aMigDevice } from './builders';

const gpu0 = aGpu({ index: 0, uuid: 'GPU-AAAAAAAA-0000-0000-0000-000000000000' });
const gpu1 = aGpu({ index: 1, migDevices: [aMigDevice({ index: 0, uuid: 'MIG-bbbbbbbb-0000-0000-0000-000000000000' })] });

describe('selectGpus', () => {
  it('selects every GPU and MIG device with all, none with none', () => {
    expect([selectGpus('all').gpuSelected(gpu0), selectGpus('all').migSelected(gpu1, 'MIG-x')]).toEqual([true, true]);
    expect([selectGpus('none').gpuSelected(gpu0), selectGpus('none').migSelected(gpu1, 'MIG-x')]).toEqual([false, false]);
  });

  it('reads numeric strings as indices, since YAML and env values may arrive quoted', () => {
    const selection = selectGpus(['1']);
    expect([selection.gpuSelected(gpu0), selection.gpuSelected(gpu1)]).toEqual([false, true]);
  });

  it('compares UUIDs without regard to case', () => {
    expect(selectGpus(['gpu-aaaaaaaa-0000-0000-0000-000000000000']).gpuSelected(gpu0)).toBe(true);
    expect(selectGpus(['MIG-BBBBBBBB-0000-0000-0000-000000000000']).migSelected(gpu1, 'MIG-bbbbbbbb-0000-0000-0000-000000000000')).toBe(true);
  });

  it('does not select a whole GPU because one of its MIG devices is listed', () => {
    expect(selectGpus(['MIG-bbbbbbbb-0000-0000-0000-000000000000']).gpuSelected(gpu1)).toBe(false);
  });

  it('names the list entries that match nothing', () => {
    expect(selectGpus([0, 3, 'MIG-bbbbbbbb-0000-0000-0000-000000000000', 'GPU-nope']).unmatched([gpu0, gpu1])).toEqual(['3', 'GPU-nope']);
  });
});
