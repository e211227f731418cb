import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Wallet, getAddress, verifyTypedData } from 'ethers';
import { AllocationLedger, CapacityDetector, HostProbe, NvidiaSmi, systemInformationSource, capacitySettings } from '../../../src/capacity';
import { QUOTE_TYPES, ceilingRate, manifestHash, marketplaceDomain } from '../../../src/chain';
import { configSchema, type ProviderConfig } from '../../../src/config';
import { isProviderError, type ErrorCode } from '../../../src/errors';
import { Admission, type AdmissionDeps } from '../../../src/leases';
import { silentLogger } from '../../../src/log';
import { ImageResolver, ImageService, createDockerClient } from '../../../src/runtime';
import { openStore, type Store } from '../../../src/store';
import { systemClock } from '../../../src/util/clock';
import { execFileAsync } from '../../../src/util/exec';
import { aDockerInfo, aPassthrough } from '../../unit/capacity/builders';
import { aManifest, removeDir, tempDataDir } from './support';

const FAKE_NVIDIA_SMI = join(__dirname, '..', '..', 'fixtures', 'bin', 'nvidia-smi');
const provider = new Wallet('0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d');
const tenantA = Wallet.createRandom().address;
const tenantB = Wallet.createRandom().address;
const domain = marketplaceDomain(31337, '0x' + '11'.repeat(20));

let dir: string;
let store: Store;

beforeEach(() => {
  dir = tempDataDir('admission');
  store = openStore(join(dir, 'store.sqlite'));
});
afterEach(() => {
  store.close();
  removeDir(dir);
});

/**
 * The host's real CPU, memory and disk; GPUs from the fake nvidia-smi (one RTX 4090). This
 * machine's Docker cannot pass GPUs through, so the Docker probe is the one seam: it declares the
 * NVIDIA runtime present, which is what makes a detected GPU allocatable.
 */
async function admission(config: ProviderConfig, images?: AdmissionDeps['images']): Promise<{ admission: Admission; ledger: AllocationLedger }> {
  const docker = createDockerClient(config);
  const detector = new CapacityDetector(
    {
      host: new HostProbe({ source: systemInformationSource(), timeoutMs: 10_000 }),
      gpus: new NvidiaSmi({ exec: execFileAsync, path: FAKE_NVIDIA_SMI, timeoutMs: 10_000, env: { ...process.env, FAKE_NVIDIA_SMI_FIXTURE: 'rtx4090-535' } }),
      docker: { probe: async () => aDockerInfo(aPassthrough()) },
      clock: systemClock,
    },
    capacitySettings(config),
  );
  const report = await detector.detect();
  const ledger = new AllocationLedger(report.allocatable, systemClock, { quoteGraceMs: 120_000 });
  return {
    ledger,
    admission: new Admission({
      config,
      ledger,
      store,
      signer: provider,
      domain,
      provider: provider.address,
      clock: systemClock,
      log: silentLogger(),
      accepting: () => true,
      portsInUse: () => store.quotes.open().flatMap((q) => q.allocation.hostPorts),
      // No chain here: every tenant is funded (the funding check runs on the chain in test/e2e/quote-abuse).
      funding: { require: async () => undefined },
      // The real engine: the manifests' image is built on this host.
      images: images ?? new ImageResolver(docker, new ImageService(docker, config, silentLogger(), systemClock), config),
    }),
  };
}

function aConfig(overrides: Record<string, unknown> = {}): ProviderConfig {
  return configSchema.parse({ dataDir: dir, reserve: { cpuMillis: 0, memoryBytes: 0, diskBytes: 0 }, ...overrides });
}

async function refusal(promise: Promise<unknown>): Promise<ErrorCode> {
  try {
    await promise;
  } catch (err) {
    if (isProviderError(err)) return err.code;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('admission and pricing (real SQLite, fake nvidia-smi)', () => {
  it('two tenants racing for the last GPU: one quote, one refusal', async () => {
    const { admission: a, ledger } = await admission(aConfig());
    expect(ledger.free().gpus).toHaveLength(1);
    const manifest = aManifest({ resources: { cpuMillis: 100, memoryBytes: 64 * 2 ** 20, gpus: { count: 1 } } });
    const results = await Promise.allSettled([a.quote(tenantA, manifest), a.quote(tenantB, manifest)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(isProviderError(lost[0]!.reason, 'CAPACITY_EXHAUSTED')).toBe(true);
    expect((lost[0]!.reason as Error).message).toMatch(/gpus: asked 1/);
    expect(store.quotes.open()).toHaveLength(1);
    expect(store.quotes.open()[0]!.allocation.gpuModels).toEqual(['NVIDIA GeForce RTX 4090']);
  });

  it('prices the allocated GPU model from the rate card and signs a quote the tenant can verify', async () => {
    const config = aConfig({ pricing: { perGpuSecondByModel: { 'NVIDIA GeForce RTX 4090': '777' }, perGiBMemorySecond: '1024', perLeaseSecond: '5' } });
    const { admission: a } = await admission(config);
    const manifest = aManifest({ resources: { cpuMillis: 1000, memoryBytes: 2 ** 30, gpus: { count: 1 } } });
    const quoted = await a.quote(tenantA, manifest);
    expect(quoted.quote.rates.perGpuSecond).toBe(777n);
    expect(quoted.quote.rates.perSecond).toBe(5n + 1024n);
    expect(quoted.quote.manifestHash).toBe(manifestHash(manifest as never));
    // A random 96-bit nonce: the lease id is (provider << 96) | nonce (a 64-bit-or-less nonce has odds 2^-32).
    expect(quoted.quote.nonce).toBeGreaterThan(2n ** 64n);
    expect(quoted.quote.nonce).toBeLessThan(2n ** 96n);
    expect(getAddress(verifyTypedData(domain, QUOTE_TYPES, quoted.quote, quoted.signature))).toBe(provider.address);
    // V2 commits the allocation instead of a cap: the manifest's core, its GPU, the configured egress;
    // the claim cap (ceilingRate) follows from rates × allocation.
    expect(quoted.quote.allocation).toEqual({ cpuMillicores: 1_000n, gpuCount: 1n, egressBytesPerSecond: BigInt(config.runtime.egress.bytesPerSecond) });
    expect(ceilingRate(quoted.quote.rates, quoted.quote.allocation)).toBeGreaterThan(quoted.quote.rates.perSecond + 777n);
    const stored = store.quotes.get(quoted.quote.nonce.toString())!;
    expect(stored.manifest).not.toHaveProperty('registryAuth');
  });

  it('never stores registry credentials', async () => {
    // Credentials mean a private registry, and none is reachable here: the registry's answer is
    // given (what it is asked, credentials included, is recorded).
    const asked: unknown[] = [];
    const registry: AdmissionDeps['images'] = {
      resolve: async (reference, options) => {
        asked.push(options.registryAuth);
        return { reference, pinned: `${reference}@sha256:${'ab'.repeat(32)}`, digest: `${reference}@sha256:${'ab'.repeat(32)}`, source: 'registry', sizeBytes: null };
      },
    };
    const { admission: a } = await admission(aConfig(), registry);
    const quoted = await a.quote(tenantA, aManifest({ registryAuth: { username: 'u', password: 'hunter2-secret' } }));
    expect(asked).toEqual([{ username: 'u', password: 'hunter2-secret' }]);
    const nonce = quoted.quote.nonce.toString();
    // The row as SQLite holds it, every column, not as the store reads it back.
    const file = new Database(join(dir, 'store.sqlite'), { readonly: true });
    const row = file.prepare('SELECT * FROM quotes WHERE nonce = ?').get(nonce);
    file.close();
    expect(JSON.stringify(row)).not.toContain('hunter2-secret');
    expect(a.registryAuth(nonce)?.password).toBe('hunter2-secret');
  });

  it('refuses what the policy refuses, naming the field', async () => {
    const config = aConfig({
      admission: {
        images: { deny: ['evil/**'] },
        tenants: { deny: [tenantB] },
        maxLeaseDurationSeconds: 3600,
        maxCpuMillisPerLease: 2000,
        gpuModels: ['*A100*'],
      },
    });
    const { admission: a } = await admission(config);
    expect(await refusal(a.quote(tenantA, aManifest({ image: 'evil/miner:latest' })))).toBe('IMAGE_DENIED');
    expect(await refusal(a.quote(tenantB, aManifest()))).toBe('TENANT_DENIED');
    expect(await refusal(a.quote(tenantA, aManifest({ maxDurationSeconds: 7200 })))).toBe('POLICY_REFUSED');
    expect(await refusal(a.quote(tenantA, aManifest({ resources: { cpuMillis: 4000, memoryBytes: 2 ** 26 } })))).toBe('POLICY_REFUSED');
    expect(await refusal(a.quote(tenantA, aManifest({ resources: { cpuMillis: 100, memoryBytes: 2 ** 26, gpus: { count: 1 } } })))).toBe('POLICY_REFUSED');
    expect(await refusal(a.quote(tenantA, { ...aManifest(), privileged: true }))).toBe('MANIFEST_INVALID');
    expect(await refusal(a.quote(tenantA, aManifest({ resources: { cpuMillis: 1000, memoryBytes: 2 ** 44 } })))).toBe('CAPACITY_EXHAUSTED');
    expect(store.quotes.open()).toHaveLength(0);
  });

  it.each([`sha256:${'ab'.repeat(32)}`, '3f57d9401f8d'])('refuses the bare image id %s at quote time, before a quote is signed', async (image) => {
    const { admission: a } = await admission(aConfig());
    expect(await refusal(a.quote(tenantA, aManifest({ image })))).toBe('IMAGE_DENIED');
    expect(store.quotes.open()).toHaveLength(0);
  });

  it('keeps API nonces across a reopen of the store (replay after restart refused)', () => {
    const ledger = store.nonceLedger(() => 1_000);
    expect(ledger.claim(tenantA, '0xaa', 2_000)).toBe(true);
    expect(ledger.claim(tenantA, '0xaa', 2_000)).toBe(false);
    store.close();
    store = openStore(join(dir, 'store.sqlite'));
    const again = store.nonceLedger(() => 1_500);
    expect(again.claim(tenantA, '0xAA', 2_000)).toBe(false);
    expect(store.nonceLedger(() => 2_001).claim(tenantA, '0xaa', 3_000)).toBe(true);
  });
});
