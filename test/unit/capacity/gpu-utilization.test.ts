import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GpuUtilizationSampler, NvidiaSmi, parseUtilizationCsv } from '../../../src/capacity';
import { ProviderError } from '../../../src/errors';
import { manualClock } from '../../../src/util/clock';
import { execFileAsync } from '../../../src/util/exec';

const FAKE = join(__dirname, '..', '..', 'fixtures', 'bin', 'nvidia-smi');
const FIXTURES = join(__dirname, '..', '..', 'fixtures', 'nvidia-smi');
const MiB = 1024 * 1024;

function nvidiaSmi(env: Record<string, string>): NvidiaSmi {
  return new NvidiaSmi({ exec: execFileAsync, path: FAKE, timeoutMs: 10_000, env: { ...process.env, ...env } });
}

describe('the utilisation query (nvidia-smi --query-gpu CSV)', () => {
  it('reads a recorded line: percent to a 0..1 ratio, MiB to bytes', () => {
    expect(parseUtilizationCsv(readFileSync(join(FIXTURES, 'rtx4090-535', 'query-gpu.csv'), 'utf8'))).toEqual([
      { uuid: 'GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14', utilization: 0.07, memoryUsedBytes: 1128 * MiB, memoryTotalBytes: 24564 * MiB },
    ]);
  });

  it('reads [N/A] (a GPU with MIG on has no utilisation of its own) and [Not Supported] as no reading', () => {
    const rows = parseUtilizationCsv('GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77, [N/A], 57, 40960\nGPU-e109d8d9-923e-7235-0429-96b7fdbcbd30, 88, [Not Supported], 40960\n');
    expect(rows).toEqual([
      { uuid: 'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77', utilization: null, memoryUsedBytes: 57 * MiB, memoryTotalBytes: 40960 * MiB },
      { uuid: 'GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30', utilization: 0.88, memoryUsedBytes: null, memoryTotalBytes: 40960 * MiB },
    ]);
  });

  it('reads all eight GPUs of a recorded HGX line set, blank lines and CRLF included', () => {
    const text = readFileSync(join(FIXTURES, 'h100x8-580', 'query-gpu.csv'), 'utf8').replace(/\n/g, '\r\n');
    const rows = parseUtilizationCsv(`${text}\r\n`);
    expect(rows).toHaveLength(8);
    expect(rows.filter((row) => row.utilization !== null && row.utilization > 0.9).map((row) => row.uuid)).toEqual([
      'GPU-d31a7b58-9e0c-4b62-b7f4-08a5c1e6d9f2',
      'GPU-5c8e0f27-b3d1-4a96-9f4e-c27a81d0e5b3',
    ]);
  });

  it.each([
    ['a header line (the query ran without noheader)', 'uuid, utilization.gpu [%], memory.used [MiB], memory.total [MiB]'],
    ['units left in (without nounits)', 'GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14, 7 %, 1128 MiB, 24564 MiB'],
    ['a field missing', 'GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14, 7, 1128'],
    ['a percentage above 100', 'GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14, 170, 1128, 24564'],
    ['not a GPU UUID', '00000000:01:00.0, 7, 1128, 24564'],
    ['a driver failure on stdout', 'NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver.'],
  ])('refuses %s with NVIDIA_SMI_BAD_OUTPUT naming the line', (_what, line) => {
    let caught: unknown;
    try {
      parseUtilizationCsv(`GPU-9b2f41c7-0a6e-8d3c-55f1-7e0d2c4b9a38, 0, 2, 15360\n${line}\n`);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ProviderError);
    expect(caught).toMatchObject({ code: 'NVIDIA_SMI_BAD_OUTPUT' });
    expect((caught as Error).message).toContain('line 2');
  });
});

describe('the GPU utilisation sampler', () => {
  const GPU0 = 'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77';
  const GPU1 = 'GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30';
  const SLICE = 'MIG-cba663e8-9bed-5b26-b243-5deb0e55c1e8';

  function calls(file: string): string[] {
    try {
      return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  it('reads a GPU and a MIG slice: the slice\'s memory from -q -x and -L, its utilisation its parent\'s ([N/A] while MIG is on)', async () => {
    const log = join(mkdtempSync(join(tmpdir(), 'gpu-util-')), 'calls');
    const sampler = new GpuUtilizationSampler({ source: nvidiaSmi({ FAKE_NVIDIA_SMI_FIXTURE: 'a100-mig-535', FAKE_NVIDIA_SMI_CALLS: log }), clock: manualClock(0), maxAgeMs: 5_000 });
    expect(await sampler.read([GPU1, SLICE])).toEqual([
      { uuid: GPU1, parentUuid: null, utilization: 0.88, memoryUsedBytes: 30510 * MiB, memoryTotalBytes: 40960 * MiB },
      { uuid: SLICE, parentUuid: GPU0, utilization: null, memoryUsedBytes: 7 * MiB, memoryTotalBytes: 9856 * MiB },
    ]);
    expect(calls(log).sort()).toEqual(['--query-gpu=uuid,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits', '-L', '-q -x']);
  });

  it('answers every lease that samples within maxAge from one nvidia-smi run, and runs again after it', async () => {
    const log = join(mkdtempSync(join(tmpdir(), 'gpu-util-')), 'calls');
    const clock = manualClock(0);
    const sampler = new GpuUtilizationSampler({ source: nvidiaSmi({ FAKE_NVIDIA_SMI_FIXTURE: 'h100x8-580', FAKE_NVIDIA_SMI_CALLS: log }), clock, maxAgeMs: 5_000 });
    const [a, b] = await Promise.all([sampler.read(['GPU-d31a7b58-9e0c-4b62-b7f4-08a5c1e6d9f2']), sampler.read(['GPU-5c8e0f27-b3d1-4a96-9f4e-c27a81d0e5b3'])]);
    clock.advance(4_999);
    const c = await sampler.read(['GPU-a4d8e2c1-5f3b-4c7e-9d21-6b0f8e3a1c57']);
    expect([a[0]?.utilization, b[0]?.utilization, c[0]?.utilization]).toEqual([0.97, 0.96, 0]);
    expect(calls(log)).toHaveLength(1);
    clock.advance(1);
    await sampler.read(['GPU-a4d8e2c1-5f3b-4c7e-9d21-6b0f8e3a1c57']);
    expect(calls(log)).toHaveLength(2);
    expect(calls(log).every((line) => line.startsWith('--query-gpu='))).toBe(true);
  });

  it('runs nothing for no UUIDs, and after a failed run tries again at the next sample', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-util-'));
    const csv = join(dir, 'query-gpu.csv');
    const log = join(dir, 'calls');
    writeFileSync(csv, 'garbage\n');
    const sampler = new GpuUtilizationSampler({ source: nvidiaSmi({ FAKE_NVIDIA_SMI_QUERY_GPU_CSV: csv, FAKE_NVIDIA_SMI_CALLS: log }), clock: manualClock(0), maxAgeMs: 5_000 });
    expect(await sampler.read([])).toEqual([]);
    expect(calls(log)).toEqual([]);
    await expect(sampler.read(['GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14'])).rejects.toMatchObject({ code: 'NVIDIA_SMI_BAD_OUTPUT' });
    writeFileSync(csv, 'GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14, 50, 100, 200\n');
    expect(await sampler.read(['GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14'])).toEqual([
      { uuid: 'GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14', parentUuid: null, utilization: 0.5, memoryUsedBytes: 100 * MiB, memoryTotalBytes: 200 * MiB },
    ]);
  });

  it('fails with NVIDIA_SMI_TIMEOUT when nvidia-smi hangs past its bound', async () => {
    const hang = new NvidiaSmi({ exec: execFileAsync, path: join(__dirname, '..', '..', 'fixtures', 'bin', 'nvidia-smi-hang'), timeoutMs: 300, env: process.env });
    const sampler = new GpuUtilizationSampler({ source: hang, clock: manualClock(0), maxAgeMs: 5_000 });
    await expect(sampler.read(['GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14'])).rejects.toMatchObject({ code: 'NVIDIA_SMI_TIMEOUT' });
  });
});
