import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ProviderMetrics, wire } from '../../../src/api';
import { GpuUtilizationSampler, NvidiaSmi } from '../../../src/capacity';
import { formatLeaseDetail } from '../../../src/cli/operator-format';
import { leaseDetail, runningGpuReadings } from '../../../src/daemon/operator-views';
import { EngineProviderService } from '../../../src/daemon/provider-service';
import { execFileAsync } from '../../../src/util/exec';
import { until } from '../../support/until';
import { EngineHarness, TENANT, aManifest } from './engine-harness';

jest.setTimeout(20_000);

const FAKE = join(__dirname, '..', '..', 'fixtures', 'bin', 'nvidia-smi');
const RTX = 'GPU-3f1e9c2a-7b4d-4e8a-9c61-2d5f0a8b7e14';
const MiB = 1024 * 1024;

let h: EngineHarness;
afterEach(() => h?.stop());

describe('GPU utilisation of a lease, read at its usage samples', () => {
  it('stores each sample\'s reading with the record, shows it in the tenant\'s usage view, `provider leases <id>` and /metrics, and never runs nvidia-smi for a CPU lease', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-lease-'));
    const csv = join(dir, 'query-gpu.csv');
    const calls = join(dir, 'calls');
    writeFileSync(csv, `${RTX}, 7, 1128, 24564\n`);
    const env = { ...process.env, FAKE_NVIDIA_SMI_QUERY_GPU_CSV: csv, FAKE_NVIDIA_SMI_CALLS: calls };
    h = new EngineHarness({
      gpus: (clock) => new GpuUtilizationSampler({ source: new NvidiaSmi({ exec: execFileAsync, path: FAKE, timeoutMs: 10_000, env }), clock, maxAgeMs: 5_000 }),
    });
    await h.start();
    h.quote('1', aManifest({ resources: { cpuMillis: 1000, memoryBytes: 64 * 2 ** 20, gpus: { count: 1 } } }), [RTX]);
    h.quote('2');
    h.open('1', '1');
    h.open('2', '2');
    await h.reach('1', 'running');
    await h.reach('2', 'running');

    await h.meterTick();
    await until('a record of each lease', () => h.store.usage.forLease('1').length >= 1 && h.store.usage.forLease('2').length >= 1, 5_000, 5);
    writeFileSync(csv, `${RTX}, 93, 20480, 24564\n`);
    await h.meterTick();
    await until('a second record of lease 1', () => h.store.usage.forLease('1').length >= 2, 5_000, 5);

    const records = h.store.usage.forLease('1');
    // Billing is unchanged: allocated GPU-seconds, whatever the card did.
    expect(records.map((r) => r.gpuMillis)).toEqual([5_000n, 5_000n]);
    const service = new EngineProviderService({ store: h.store } as unknown as ConstructorParameters<typeof EngineProviderService>[0]);
    // Through the wire as the tenant client decodes it.
    const view = wire.usageViewWire.parse(JSON.parse(JSON.stringify(z.encode(wire.usageViewWire, await service.usage('1', TENANT)))));
    expect(view.gpus).toEqual([
      { seq: 0, at: Number(records[0]!.t1), uuid: RTX, parentUuid: null, utilization: 0.07, memoryUsedBytes: 1128 * MiB, memoryTotalBytes: 24564 * MiB },
      { seq: 1, at: Number(records[1]!.t1), uuid: RTX, parentUuid: null, utilization: 0.93, memoryUsedBytes: 20480 * MiB, memoryTotalBytes: 24564 * MiB },
    ]);
    expect((await service.usage('2', TENANT)).gpus).toEqual([]);

    const detail = leaseDetail(h.store, '1');
    expect(detail.gpus).toEqual([view.gpus[1]]);
    const text = formatLeaseDetail(detail, 'daemon');
    expect(text).toContain('GPUS (read ');
    expect(text).toMatch(new RegExp(`${RTX}\\s+93%\\s+20\\.0 GiB\\s+24\\.0 GiB`));

    const metrics = new ProviderMetrics({ processMetrics: false });
    metrics.setGpuReadings(runningGpuReadings(h.store));
    const rendered = (await metrics.render()).split('\n');
    expect(rendered).toContain(`provider_gpu_utilization_ratio{uuid="${RTX}"} 0.93`);
    expect(rendered).toContain(`provider_gpu_memory_used_bytes{uuid="${RTX}"} ${20480 * MiB}`);

    // One run per sample of the GPU lease; the CPU lease never ran one.
    expect(readFileSync(calls, 'utf8').trim().split('\n')).toEqual(Array(2).fill('--query-gpu=uuid,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits'));
    expect(h.store.usage.gpuForLease('2')).toEqual([]);
  });

  it('stores the record without readings when nvidia-smi fails: billing goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpu-lease-'));
    const csv = join(dir, 'query-gpu.csv');
    writeFileSync(csv, 'NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver.\n');
    const env = { ...process.env, FAKE_NVIDIA_SMI_QUERY_GPU_CSV: csv };
    h = new EngineHarness({
      gpus: (clock) => new GpuUtilizationSampler({ source: new NvidiaSmi({ exec: execFileAsync, path: FAKE, timeoutMs: 10_000, env }), clock, maxAgeMs: 5_000 }),
    });
    await h.start();
    h.quote('1', aManifest({ resources: { cpuMillis: 1000, memoryBytes: 64 * 2 ** 20, gpus: { count: 1 } } }), [RTX]);
    h.open('1', '1');
    await h.reach('1', 'running');
    await h.meterTick();
    await until('a record', () => h.store.usage.forLease('1').length >= 1, 5_000, 5);
    expect(h.store.usage.forLease('1')[0]).toMatchObject({ gpuMillis: 5_000n });
    expect(h.store.usage.gpuForLease('1')).toEqual([]);
    const metrics = new ProviderMetrics({ processMetrics: false });
    metrics.setGpuReadings(runningGpuReadings(h.store));
    expect((await metrics.render()).split('\n').filter((line) => line.startsWith('provider_gpu_utilization_ratio{'))).toEqual([]);
  });
});
