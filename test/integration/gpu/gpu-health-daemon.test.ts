import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JsonRpcProvider } from 'ethers';
import { createRpcProvider } from '../../../src/chain';
import { localApiUrl } from '../../../src/api';
import type { ProviderConfig } from '../../../src/config';
import { formatStatus } from '../../../src/cli/operator-format';
import { Daemon } from '../../../src/daemon';
import type { PassthroughVerdict } from '../../../src/doctor';
import { createLogger } from '../../../src/log';
import { MemoryBackend, type PrepareInput, type PreparedWorkload, type StartInput, type StartedWorkload } from '../../../src/runtime';
import { systemClock } from '../../../src/util/clock';
import { execFileAsync } from '../../../src/util/exec';
import { aDockerInfo } from '../../unit/capacity/builders';
import { ChainTenant, TOKEN, aManifest, removeDir, sh, tempDataDir, testConfig, until } from '../leases/support';

jest.setTimeout(180_000);

const BIN = join(__dirname, '..', '..', 'fixtures', 'bin');
// The recorded 8x H100 machine (test/fixtures/nvidia-smi/h100x8-580): GPU 0 at 18:00.0, GPU 1 at 2A:00.0.
const GPU0 = 'GPU-a4d8e2c1-5f3b-4c7e-9d21-6b0f8e3a1c57';
const GPU1 = 'GPU-0b7c3e9d-2a1f-4d8b-8e56-f3c2a9d70b14';
const GPU2 = 'GPU-6e2f91ab-c4d7-4f03-a8b5-1d9e0c7f2a63';
const GPU3 = 'GPU-d31a7b58-9e0c-4b62-b7f4-08a5c1e6d9f2';

let dataDir: string | undefined;
let daemon: Daemon | undefined;
let rpc: JsonRpcProvider | undefined;
/** What the daemon's throwaway-container passthrough check finds (no container can get a GPU here). */
let passthrough: PassthroughVerdict = { ok: true, detail: 'a container sees it' };

afterEach(async () => {
  await daemon?.stop().catch(() => undefined);
  daemon = undefined;
  rpc?.destroy();
  rpc = undefined;
  removeDir(dataDir);
});

/**
 * Leases in memory, prepared with the image the quote resolved on this host's Docker (the memory
 * backend names images by a hash of their reference, which the quote's pin would refuse).
 */
class HostImageMemoryBackend extends MemoryBackend {
  private readonly hostIds = new Map<string, string>();

  override async prepare(input: PrepareInput): Promise<PreparedWorkload> {
    const prepared = await super.prepare(input);
    const hostId = (await sh('docker', ['image', 'inspect', '--format', '{{.Id}}', input.manifest.image])).stdout.trim();
    this.hostIds.set(hostId, prepared.imageId);
    return { ...prepared, imageId: hostId, digest: hostId };
  }

  override start(input: StartInput): Promise<StartedWorkload> {
    return super.start({ ...input, imageId: this.hostIds.get(input.imageId) ?? input.imageId });
  }
}

/**
 * The daemon in process with the fake nvidia-smi (its GPUs change when the test rewrites the
 * state file), the fake dmesg, a Docker engine that reports an NVIDIA runtime, and leases in
 * memory: no lease can hold a GPU on this host's Docker. Chain, store, API and engine are real.
 */
let config: ProviderConfig | undefined;

async function startDaemon(name: string): Promise<{ d: Daemon; tenant: ChainTenant; state: string; kernelLog: string }> {
  dataDir = tempDataDir(name);
  const state = join(dataDir, 'gpu-state');
  const kernelLog = join(dataDir, 'kmsg');
  writeFileSync(state, '');
  writeFileSync(kernelLog, '[    3.100000] NVRM: Xid (PCI:0000:18:00): 79, pid=1, name=old, GPU has fallen off the bus.\n');
  config = await testConfig(dataDir, {
    gpu: { nvidiaSmiPath: join(BIN, 'nvidia-smi-health'), health: { intervalSeconds: 1, recoverAfterSeconds: 12, dmesgPath: join(BIN, 'dmesg-xid') } },
    pricing: { perGpuSecond: '1000000000000' },
  });
  const log = createLogger({ level: (process.env.TEST_LOG_LEVEL as 'info' | undefined) ?? 'silent', format: 'json' });
  daemon = await Daemon.start({
    config,
    log,
    env: { PATH: process.env.PATH, FAKE_NVIDIA_SMI_STATE: state, FAKE_DMESG_FILE: kernelLog },
    exec: execFileAsync,
    clock: systemClock,
    version: 'test',
    seams: { docker: { probe: async () => aDockerInfo() }, backend: new HostImageMemoryBackend({ clock: systemClock }), passthrough: async () => passthrough },
  });
  rpc = createRpcProvider(daemon.info.rpcUrl, { chainId: daemon.info.chainId });
  const tenant = new ChainTenant(rpc, daemon.info.marketplace, daemon.info.token!);
  await tenant.approveMarketplace();
  return { d: daemon, tenant, state, kernelLog };
}

async function freeGpus(d: Daemon): Promise<number> {
  return (await d.service.offer()).free.gpus.reduce((sum, g) => sum + g.count, 0);
}

/** /metrics from the operator listener (plain HTTP on loopback), as the operator's tools read it. */
async function metrics(): Promise<string> {
  return (await fetch(`${localApiUrl(config!)}/metrics`)).text();
}

describe('GPU health in a running daemon (fake nvidia-smi and dmesg)', () => {
  it('withdraws a GPU on an ECC rise and another on an Xid, shows why, counts it, and sells them again after the healthy period', async () => {
    const { d, state, kernelLog } = await startDaemon('gpu-health');
    const offer = await d.service.offer();
    expect(offer.gpuModels).toEqual([
      { model: 'NVIDIA H100 80GB HBM3', profile: null, memoryBytes: 81559 * 2 ** 20, driverVersion: '580.65.06', cudaVersion: '13.0', pcie: { gen: 5, width: 16 }, total: 8, healthy: 8, unhealthy: [] },
    ]);
    // An Xid logged before the daemon started is history, not news.
    expect((await d.service.status()).gpus.every((g) => g.status === 'healthy' && g.xidErrors === 0)).toBe(true);

    // Both faults at once, so both GPUs share one timeline: each check below must see them still
    // off sale, which holds for recoverAfterSeconds after the faults, however slow this machine is.
    // A one-off fault is 'unhealthy' for one health interval, then 'recovering' with the same reason.
    writeFileSync(state, '0 ecc=2\n');
    appendFileSync(kernelLog, '[ 5123.456789] NVRM: Xid (PCI:0000:2a:00): 79, pid=2345, name=python3, GPU has fallen off the bus.\n');
    await until('GPUs 0 and 1 are withdrawn', async () => ((await freeGpus(d)) === 6 ? true : undefined));
    const withdrawn = await d.service.offer();
    expect(withdrawn.gpuModels[0]).toMatchObject({
      total: 8,
      healthy: 6,
      // The offer names a recovering GPU's reason with "recovering from " before it.
      unhealthy: [
        { uuid: GPU0, reason: expect.stringMatching(/^(recovering from )?ecc-uncorrectable: uncorrectable ECC errors rose from 0 to 2$/) },
        { uuid: GPU1, reason: expect.stringMatching(/^(recovering from )?xid: Xid 79: pid=2345, name=python3, GPU has fallen off the bus\.$/) },
      ],
    });
    const status = await d.service.status();
    const offSale = expect.stringMatching(/^(unhealthy|recovering)$/);
    expect(status.gpus[0]).toMatchObject({ index: 0, uuid: GPU0, status: offSale, reason: 'ecc-uncorrectable: uncorrectable ECC errors rose from 0 to 2' });
    expect(status.gpus[1]).toMatchObject({ uuid: GPU1, status: offSale, reason: 'xid: Xid 79: pid=2345, name=python3, GPU has fallen off the bus.', xidErrors: 1 });
    const text = formatStatus({ daemon: 'running', apiUrl: d.info.apiUrl, ...status });
    expect(text).toContain('6 of 8 healthy and on sale');
    const ecc = 'ecc-uncorrectable: uncorrectable ECC errors rose from 0 to 2';
    expect(text).toMatch(new RegExp(`GPU 0 ${GPU0}, \\d+ C: (UNHEALTHY since \\S+, off sale: ${ecc}|RECOVERING, back on sale at \\S+ if it stays healthy \\(was: ${ecc}\\))`));
    if (process.env.TEST_LOG_LEVEL === 'info') process.stdout.write(`provider status:\n${text}`);

    const scraped = await until('the metrics show both', async () => {
      const body = await metrics();
      return body.includes(`provider_gpu_xid_errors_total{uuid="${GPU1}"} 1`) ? body : undefined;
    });
    expect(scraped).toContain(`provider_gpu_healthy{uuid="${GPU0}",model="NVIDIA H100 80GB HBM3"} 0`);
    expect(scraped).toContain(`provider_gpu_healthy{uuid="${GPU1}",model="NVIDIA H100 80GB HBM3"} 0`);
    expect(scraped).toContain(`provider_gpu_healthy{uuid="${GPU2}",model="NVIDIA H100 80GB HBM3"} 1`);
    expect(scraped).toMatch(new RegExp(`provider_gpu_temperature_celsius\\{uuid="${GPU0}"\\} \\d+`));

    // ECC stays at 2 (no rise), the Xid is not repeated: both recover, and stay off sale meanwhile.
    await until('both recovering', async () => ((await d.service.status()).gpus.slice(0, 2).every((g) => g.status === 'recovering') ? true : undefined));
    expect(await freeGpus(d)).toBe(6);
    await until('both back on sale', async () => ((await freeGpus(d)) === 8 ? true : undefined), 30_000);
    expect((await d.service.offer()).gpuModels[0]).toMatchObject({ healthy: 8, unhealthy: [] });

    // A driver change makes the daemon run the passthrough check again; NVML failing in the
    // container takes every GPU off sale, and a later passing check puts them back.
    const nvml = 'nvidia-smi -L in a container exited 255: Failed to initialize NVML: Unknown Error';
    passthrough = { ok: false, gpusBroken: true, detail: nvml, fix: null };
    writeFileSync(state, 'x driver=580.82.07\n');
    await until('every GPU is withdrawn', async () => ((await freeGpus(d)) === 0 ? true : undefined));
    expect((await d.service.status()).gpus[5]).toMatchObject({ status: 'unhealthy', reason: `passthrough-failed: ${nvml}` });
    passthrough = { ok: true, detail: 'a container sees it' };
    writeFileSync(state, '');
    await until('every GPU is back', async () => ((await freeGpus(d)) === 8 ? true : undefined), 30_000);
  });

  it('ends a lease whose GPU is lost with gpu-failed, billed to the failure, and refuses quotes for GPUs it does not have healthy', async () => {
    const { d, tenant, state } = await startDaemon('gpu-failed');
    const refusal = async (gpus: Record<string, unknown>) => {
      const asked = aManifest({ resources: { cpuMillis: 100, memoryBytes: 64 * 2 ** 20, gpus: { count: 1, ...gpus } as never } });
      const err = (await d.service.quote(tenant.wallet.address, asked as never).catch((e: unknown) => e)) as { code?: string; message?: string; input?: string };
      return { code: err.code, input: err.input, message: err.message };
    };
    expect(await refusal({ model: 'A100' })).toMatchObject({ code: 'GPU_CONSTRAINT_UNMET', input: 'resources.gpus.model', message: expect.stringContaining('no GPU here matches "A100"; this provider has NVIDIA H100 80GB HBM3 (81559 MiB)') });
    expect(await refusal({ minMemoryBytes: 96 * 2 ** 30 })).toMatchObject({ code: 'GPU_CONSTRAINT_UNMET', input: 'resources.gpus.minMemoryBytes' });
    expect(await refusal({ minMemory: '96GiB' })).toMatchObject({ code: 'GPU_CONSTRAINT_UNMET', input: 'resources.gpus.minMemory' });
    expect(await refusal({ minCudaVersion: '13.1' })).toMatchObject({ code: 'GPU_CONSTRAINT_UNMET', input: 'resources.gpus.minCudaVersion', message: expect.stringContaining('CUDA 13.0, below 13.1') });
    expect(await refusal({ minDriverVersion: '580.82' })).toMatchObject({ code: 'GPU_CONSTRAINT_UNMET', input: 'resources.gpus.minDriverVersion', message: expect.stringContaining('580.65.06, below 580.82') });
    expect(await refusal({ migProfile: '1g.10gb' })).toMatchObject({ code: 'GPU_CONSTRAINT_UNMET', input: 'resources.gpus.migProfile' });
    expect(await refusal({ minMemory: 'lots' })).toMatchObject({ code: 'MANIFEST_INVALID' });
    const manifest = aManifest({ command: ['sleep', '600'], resources: { cpuMillis: 100, memoryBytes: 64 * 2 ** 20, gpus: { count: 8, model: 'H100', minMemory: '79GiB', minCudaVersion: '12.2', minDriverVersion: '535' } } });
    const leaseId = (await tenant.open(await d.service.quote(tenant.wallet.address, manifest as never), 1n * TOKEN)).toString();
    await until('the lease runs', async () => ((await d.service.lease(leaseId, tenant.wallet.address)).state === 'running' ? true : undefined), 60_000);
    // A first record before the failure, so the test sees where billing stops.
    await until('a first usage record', async () => ((await d.service.usage(leaseId, tenant.wallet.address)).records.length > 0 ? true : undefined));

    writeFileSync(state, '3 lost\n');
    const ended = await until('the lease ends', async () => {
      const view = await d.service.lease(leaseId, tenant.wallet.address);
      return view.endReason ? view : undefined;
    });
    expect(ended.endReason).toBe('gpu-failed');
    const detail = await d.service.operatorLease(leaseId);
    const failed = detail.transitions.find((t) => t.event === 'gpu-failed');
    expect(failed?.reason).toMatch(new RegExp(`^GPU ${GPU3}: gpu-lost: .*GPU is lost`));
    await until('the final usage is recorded', async () => (['settling', 'settled'].includes((await d.service.lease(leaseId, tenant.wallet.address)).state) ? true : undefined), 60_000);
    const usage = await d.service.usage(leaseId, tenant.wallet.address);
    const last = usage.records[usage.records.length - 1]!.record;
    expect(Number(last.t1)).toBeLessThanOrEqual(failed!.at);

    // The lost GPU stays off sale; the seven others are sold again once the lease let them go.
    await until('the lease lets its GPUs go', async () => ((await freeGpus(d)) === 7 ? true : undefined), 60_000);
    expect((await d.service.status()).gpus[3]).toMatchObject({ uuid: GPU3, status: 'unhealthy' });
    await expect(d.service.quote(tenant.wallet.address, manifest as never)).rejects.toMatchObject({ code: 'CAPACITY_EXHAUSTED' });
  });
});
