import { join } from 'node:path';
import { NvidiaSmi } from '../../../src/capacity';
import { execFileAsync } from '../../../src/util/exec';
import { FAKE_BIN } from './fixtures';

/** The real execFile wrapper against the fake binaries: what the CLI does, minus the driver. */
function nvidiaSmi(binary: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 5_000): NvidiaSmi {
  return new NvidiaSmi({ exec: execFileAsync, path: join(FAKE_BIN, binary), timeoutMs, env: { PATH: process.env.PATH, ...env } });
}

describe('NvidiaSmi', () => {
  it('reads the inventory from -q -x and -L', async () => {
    const { inventory, warnings } = await nvidiaSmi('nvidia-smi', { FAKE_NVIDIA_SMI_FIXTURE: 'a100-mig-535' }).query();
    expect(warnings).toEqual([]);
    expect(inventory.devices.map((gpu) => [gpu.index, gpu.uuid, gpu.mig.devices.map((d) => d.uuid)])).toEqual([
      [
        0,
        'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77',
        ['MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f', 'MIG-cba663e8-9bed-5b26-b243-5deb0e55c1e8', 'MIG-1d4cb2a1-7f0e-5c39-8a6d-0e2b9f4c7a15'],
      ],
      [1, 'GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30', []],
    ]);
  });

  it('finds a bare `nvidia-smi` on the PATH of the environment it is given', async () => {
    const onPath = new NvidiaSmi({
      exec: execFileAsync,
      path: 'nvidia-smi',
      timeoutMs: 5_000,
      env: { PATH: `${FAKE_BIN}:${process.env.PATH ?? ''}`, FAKE_NVIDIA_SMI_FIXTURE: 't4-510' },
    });
    const { inventory } = await onPath.query();
    expect(inventory.devices.map((gpu) => gpu.model)).toEqual(['Tesla T4']);
  });

  it('still answers, with a warning, when -L fails on a MIG machine', async () => {
    const { inventory, warnings } = await nvidiaSmi('nvidia-smi', { FAKE_NVIDIA_SMI_FIXTURE: 'a100-mig-535', FAKE_NVIDIA_SMI_LIST_FAILS: '1' }).query();
    expect(inventory.devices[0]?.mig.devices.map((d) => d.uuid)).toEqual([null, null, null]);
    expect(inventory.devices.map((gpu) => gpu.index)).toEqual([0, 1]);
    expect(warnings).toEqual([expect.stringMatching(/MIG device UUIDs unknown: .*-L` failed \(.*exited with code 15/)]);
  });

  it('reports NVIDIA_SMI_NOT_FOUND when there is no such binary', async () => {
    await expect(nvidiaSmi('no-such-nvidia-smi').query()).rejects.toMatchObject({
      code: 'NVIDIA_SMI_NOT_FOUND',
      message: expect.stringContaining('no file at'),
    });
  });

  it('reports NVIDIA_SMI_FAILED quoting the driver message nvidia-smi prints on stdout', async () => {
    await expect(nvidiaSmi('nvidia-smi-driver-failure').query()).rejects.toMatchObject({
      code: 'NVIDIA_SMI_FAILED',
      message: expect.stringContaining("exited with code 9: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"),
      fix: expect.stringContaining('modprobe nvidia'),
    });
  });

  it('gives up on a hanging nvidia-smi after its timeout with NVIDIA_SMI_TIMEOUT', async () => {
    const started = Date.now();
    await expect(nvidiaSmi('nvidia-smi-hang', {}, 300).query()).rejects.toMatchObject({
      code: 'NVIDIA_SMI_TIMEOUT',
      message: expect.stringContaining('within 300 ms'),
    });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('stops a hanging nvidia-smi at once when the caller aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutting down')), 50);
    const started = Date.now();
    await expect(nvidiaSmi('nvidia-smi-hang', {}, 10_000).query(controller.signal)).rejects.toThrow('shutting down');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('reports NVIDIA_SMI_BAD_OUTPUT for output cut off mid-document', async () => {
    await expect(nvidiaSmi('nvidia-smi-garbage').query()).rejects.toMatchObject({ code: 'NVIDIA_SMI_BAD_OUTPUT' });
  });
});
