import { parseNvidiaSmiList, parseNvidiaSmiXml, toInventory } from '../../../src/capacity';
import { isProviderError } from '../../../src/errors';
import { MiB, nvidiaSmiFixture } from './fixtures';

function inventoryOf(machine: string) {
  const { xml, list } = nvidiaSmiFixture(machine);
  return toInventory(parseNvidiaSmiXml(xml), parseNvidiaSmiList(list));
}

describe('parseNvidiaSmiXml', () => {
  it('reads a single RTX 4090 on a 535 driver', () => {
    expect(inventoryOf('rtx4090-535')).toEqual({
      driverVersion: '535.183.01',
      cudaVersion: '12.2',
      devices: [
        {
          index: 0,
          uuid: 'GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14',
          model: 'NVIDIA GeForce RTX 4090',
          busId: '00000000:01:00.0',
          driverVersion: '535.183.01',
          cudaVersion: '12.2',
          memory: { totalBytes: 24564 * MiB, usedBytes: 1128 * MiB, freeBytes: 23090 * MiB, reservedBytes: 346 * MiB },
          utilization: { gpuPercent: 7, memoryPercent: 3 },
          pcie: { currentGen: 4, maxGen: 4, currentWidth: 16, maxWidth: 16 },
          mig: { current: null, pending: null, devices: [] },
        },
      ],
    });
  });

  it('reads eight H100s on a 580 driver (nvsmi_device_v13 names) in enumeration order', () => {
    const inventory = inventoryOf('h100x8-580');
    expect(inventory.driverVersion).toBe('580.65.06');
    expect(inventory.cudaVersion).toBe('13.0');
    expect(inventory.devices.map((gpu) => [gpu.index, gpu.busId, gpu.uuid])).toEqual([
      [0, '00000000:18:00.0', 'GPU-a4d8e2c1-5f3b-4c7e-9d21-6b0f8e3a1c57'],
      [1, '00000000:2A:00.0', 'GPU-0b7c3e9d-2a1f-4d8b-8e56-f3c2a9d70b14'],
      [2, '00000000:3A:00.0', 'GPU-6e2f91ab-c4d7-4f03-a8b5-1d9e0c7f2a63'],
      [3, '00000000:5D:00.0', 'GPU-d31a7b58-9e0c-4b62-b7f4-08a5c1e6d9f2'],
      [4, '00000000:9A:00.0', 'GPU-5c8e0f27-b3d1-4a96-9f4e-c27a81d0e5b3'],
      [5, '00000000:AB:00.0', 'GPU-f9b2d4e6-1c7a-4e85-a0d3-6e4f2b9c8a71'],
      [6, '00000000:BA:00.0', 'GPU-27a6c0d9-8f4b-4d1e-b5c2-9a3e7f01d6c8'],
      [7, '00000000:DB:00.0', 'GPU-8d0e5a3f-6b2c-4f97-8c1a-e5d4b7f2903c'],
    ]);
    expect(inventory.devices.every((gpu) => gpu.model === 'NVIDIA H100 80GB HBM3')).toBe(true);
    expect(inventory.devices.every((gpu) => gpu.mig.current === 'disabled' && gpu.mig.devices.length === 0)).toBe(true);
    expect(inventory.devices[0]).toMatchObject({
      memory: { totalBytes: 81559 * MiB, reservedBytes: 551 * MiB, usedBytes: 4 * MiB, freeBytes: 81004 * MiB },
      utilization: { gpuPercent: 0, memoryPercent: 0 },
    });
    expect(inventory.devices[3]).toMatchObject({
      memory: { totalBytes: 81559 * MiB, reservedBytes: 551 * MiB, usedBytes: 40217 * MiB, freeBytes: 40791 * MiB },
      utilization: { gpuPercent: 97, memoryPercent: 63 },
    });
  });

  it('reads MIG devices from -q -x and takes their UUIDs and profiles from -L', () => {
    const inventory = inventoryOf('a100-mig-535');
    expect(inventory.driverVersion).toBe('535.129.03');
    const [mig, whole] = inventory.devices;
    expect(mig).toEqual({
      index: 0,
      uuid: 'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77',
      model: 'NVIDIA A100-SXM4-40GB',
      busId: '00000000:07:00.0',
      driverVersion: '535.129.03',
      cudaVersion: '12.2',
      memory: { totalBytes: 40960 * MiB, usedBytes: 57 * MiB, freeBytes: 40298 * MiB, reservedBytes: 605 * MiB },
      // Under MIG the card reports no utilisation of its own: N/A must read as unknown, not 0.
      utilization: { gpuPercent: null, memoryPercent: null },
      pcie: { currentGen: 4, maxGen: 4, currentWidth: 16, maxWidth: 16 },
      mig: {
        current: 'enabled',
        pending: 'enabled',
        devices: [
          {
            index: 0,
            uuid: 'MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f',
            profile: '3g.20gb',
            gpuInstanceId: 1,
            computeInstanceId: 0,
            memory: { totalBytes: 19968 * MiB, usedBytes: 13 * MiB, freeBytes: 19955 * MiB },
          },
          {
            index: 1,
            uuid: 'MIG-cba663e8-9bed-5b26-b243-5deb0e55c1e8',
            profile: '2g.10gb',
            gpuInstanceId: 5,
            computeInstanceId: 0,
            memory: { totalBytes: 9856 * MiB, usedBytes: 7 * MiB, freeBytes: 9849 * MiB },
          },
          {
            index: 2,
            uuid: 'MIG-1d4cb2a1-7f0e-5c39-8a6d-0e2b9f4c7a15',
            profile: '1g.5gb',
            gpuInstanceId: 13,
            computeInstanceId: 0,
            memory: { totalBytes: 4864 * MiB, usedBytes: 4 * MiB, freeBytes: 4860 * MiB },
          },
        ],
      },
    });
    expect(whole).toMatchObject({
      index: 1,
      uuid: 'GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30',
      busId: '00000000:0F:00.0',
      memory: { totalBytes: 40960 * MiB, usedBytes: 30510 * MiB, freeBytes: 9845 * MiB, reservedBytes: 605 * MiB },
      utilization: { gpuPercent: 88, memoryPercent: 41 },
      mig: { current: 'disabled', pending: 'disabled', devices: [] },
    });
  });

  it('reads a Tesla T4 on a 510 driver (nvsmi_device_v11 names)', () => {
    expect(inventoryOf('t4-510')).toEqual({
      driverVersion: '510.47.03',
      cudaVersion: '11.6',
      devices: [
        {
          index: 0,
          uuid: 'GPU-9b2f41c7-0a6e-8d3c-55f1-7e0d2c4b9a38',
          model: 'Tesla T4',
          busId: '00000000:00:1E.0',
          driverVersion: '510.47.03',
          cudaVersion: '11.6',
          memory: { totalBytes: 15360 * MiB, usedBytes: 2 * MiB, freeBytes: 15109 * MiB, reservedBytes: 249 * MiB },
          utilization: { gpuPercent: 0, memoryPercent: 0 },
          pcie: { currentGen: 3, maxGen: 3, currentWidth: 16, maxWidth: 16 },
          mig: { current: null, pending: null, devices: [] },
        },
      ],
    });
  });

  it('leaves MIG UUIDs and profiles null when -L could not be read', () => {
    const { xml } = nvidiaSmiFixture('a100-mig-535');
    const inventory = toInventory(parseNvidiaSmiXml(xml), undefined);
    expect(inventory.devices[0]?.mig.devices.map((d) => [d.index, d.uuid, d.profile])).toEqual([
      [0, null, null],
      [1, null, null],
      [2, null, null],
    ]);
    expect(inventory.devices.map((gpu) => gpu.index)).toEqual([0, 1]);
  });

  it('reads a pre-510 document without reserved memory or CUDA version as nulls', () => {
    const xml = `<?xml version="1.0" ?>
<nvidia_smi_log><driver_version>418.87.01</driver_version><attached_gpus>1</attached_gpus>
<gpu id="00000000:3B:00.0"><product_name>Tesla V100-PCIE-16GB</product_name><uuid>GPU-11111111-2222-3333-4444-555555555555</uuid>
<fb_memory_usage><total>16160 MiB</total><used>0 MiB</used><free>16160 MiB</free></fb_memory_usage>
<utilization><gpu_util>0 %</gpu_util><memory_util>0 %</memory_util></utilization></gpu></nvidia_smi_log>`;
    const inventory = parseNvidiaSmiXml(xml);
    expect(inventory).toEqual({
      driverVersion: '418.87.01',
      cudaVersion: null,
      gpus: [
        {
          position: 0,
          uuid: 'GPU-11111111-2222-3333-4444-555555555555',
          model: 'Tesla V100-PCIE-16GB',
          busId: '00000000:3B:00.0',
          memory: { totalBytes: 16160 * MiB, usedBytes: 0, freeBytes: 16160 * MiB, reservedBytes: null },
          utilization: { gpuPercent: 0, memoryPercent: 0 },
          mig: { current: null, pending: null, devices: [] },
          pcie: { currentGen: null, maxGen: null, currentWidth: null, maxWidth: null },
          health: {
            temperatureCelsius: null,
            eccUncorrectableVolatile: null,
            pendingRetirement: false,
            remapPending: false,
            remapFailure: false,
            activeClockEvents: [],
            recoveryAction: null,
          },
        },
      ],
    });
  });

  it('reads the driver and CUDA versions under their nvsmi_device_v13 replacement names', () => {
    const xml = `<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v13.dtd">
<nvidia_smi_log><kmd_version>590.44.01</kmd_version><cuda_umd_version>13.1</cuda_umd_version><attached_gpus>0</attached_gpus></nvidia_smi_log>`;
    expect(parseNvidiaSmiXml(xml)).toEqual({ driverVersion: '590.44.01', cudaVersion: '13.1', gpus: [] });
  });

  it('reads padded values and placeholders such as [Insufficient Permissions] as null', () => {
    const xml = `<nvidia_smi_log><gpu><uuid> GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee </uuid><product_name>NVIDIA L4</product_name>
<fb_memory_usage><total> 23034 MiB </total><used>[Insufficient Permissions]</used><free>N/A</free></fb_memory_usage>
<utilization><gpu_util> 40 % </gpu_util><memory_util>[N/A]</memory_util></utilization></gpu></nvidia_smi_log>`;
    const [gpu] = parseNvidiaSmiXml(xml).gpus;
    expect(gpu).toMatchObject({
      uuid: 'GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
      busId: null,
      memory: { totalBytes: 23034 * MiB, usedBytes: null, freeBytes: null, reservedBytes: null },
      utilization: { gpuPercent: 40, memoryPercent: null },
    });
  });

  it.each([
    ['plain text', 'Failed to initialize NVML: Driver/library version mismatch'],
    ['a truncated document', nvidiaSmiFixture('rtx4090-535').xml.slice(0, 1500)],
    ['XML of something else', '<html><body>hello</body></html>'],
    ['nothing at all', ''],
  ])('refuses %s with NVIDIA_SMI_BAD_OUTPUT', (_name, output) => {
    expect(() => parseNvidiaSmiXml(output)).toThrow(expect.objectContaining({ code: 'NVIDIA_SMI_BAD_OUTPUT' }));
  });

  it('refuses a GPU without a UUID, since nothing could address it', () => {
    let caught: unknown;
    try {
      parseNvidiaSmiXml('<nvidia_smi_log><gpu><product_name>NVIDIA A10</product_name></gpu></nvidia_smi_log>');
    } catch (err) {
      caught = err;
    }
    expect(isProviderError(caught, 'NVIDIA_SMI_BAD_OUTPUT')).toBe(true);
  });
});
