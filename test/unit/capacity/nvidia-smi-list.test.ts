import { parseNvidiaSmiList } from '../../../src/capacity';
import { nvidiaSmiFixture } from './fixtures';

describe('parseNvidiaSmiList', () => {
  it('lists GPUs by UUID with their index and MIG devices by device index', () => {
    const listed = parseNvidiaSmiList(nvidiaSmiFixture('a100-mig-535').list);
    expect([...listed.keys()]).toEqual(['GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77', 'GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30']);
    const first = listed.get('GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77');
    expect(first?.index).toBe(0);
    expect(first?.model).toBe('NVIDIA A100-SXM4-40GB');
    expect([...(first?.migDevices ?? new Map()).entries()]).toEqual([
      [0, { profile: '3g.20gb', uuid: 'MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f' }],
      [1, { profile: '2g.10gb', uuid: 'MIG-cba663e8-9bed-5b26-b243-5deb0e55c1e8' }],
      [2, { profile: '1g.5gb', uuid: 'MIG-1d4cb2a1-7f0e-5c39-8a6d-0e2b9f4c7a15' }],
    ]);
    expect(listed.get('GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30')?.migDevices.size).toBe(0);
  });

  it('keeps the R450/R460 MIG UUID form MIG-GPU-<uuid>/<gi>/<ci> as printed', () => {
    const listed = parseNvidiaSmiList(
      'GPU 0: A100-SXM4-40GB (UUID: GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2)\n' +
        '  MIG 3g.20gb Device 0: (UUID: MIG-GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2/1/0)\n',
    );
    expect(listed.get('GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2')?.migDevices.get(0)).toEqual({
      profile: '3g.20gb',
      uuid: 'MIG-GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2/1/0',
    });
  });

  it('skips lines it does not know, such as a warning before the list', () => {
    const listed = parseNvidiaSmiList('WARNING: infoROM is corrupted at gpu 0000:01:00.0\r\nGPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14)\r\n');
    expect([...listed.entries()].map(([uuid, gpu]) => [uuid, gpu.index])).toEqual([['GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14', 0]]);
  });
});
