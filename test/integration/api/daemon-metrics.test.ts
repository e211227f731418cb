import { Wallet } from 'ethers';
import { AllocationLedger } from '../../../src/capacity';
import { marketplaceDomain, type ChainClient } from '../../../src/chain';
import { configSchema } from '../../../src/config';
import { tmpdir } from 'node:os';
import { startApi, type RunningApi, type StartApiOptions } from '../../../src/daemon/api';
import { MemoryBackend } from '../../../src/runtime';
import { silentLogger } from '../../../src/log';
import { openStore, type Store, type StoredCheckpoint, type StoredLease } from '../../../src/store';
import { tempDir } from '../../support/cli-io';
import { CHAIN_ID } from '../../support/api-harness';
import { FakeProviderService } from '../../support/fake-provider-service';
import { anAllocatable } from '../../unit/capacity/builders';
import { manualClock } from '../../../src/util/clock';

function aLease(leaseId: string): StoredLease {
  return {
    leaseId, runtimeId: `pabc-${leaseId}`, quoteNonce: null, tenant: '0x0000000000000000000000000000000000000001', manifestHash: '0x00',
    deposit: 10n ** 18n, rates: { perSecond: 1n, perCpuSecond: 2n, perGpuSecond: 3n, perGiBEgress: 4n }, allocation: { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: 0n }, maxDuration: 60,
    openedAt: 100, state: 'settling', endReason: 'exited', exitCode: 0, detail: null, closedAt: null, containerId: null,
    startedAt: 100, endedAt: 160, imageDigest: null, timeline: null, resultDigest: null,
    logsSha256: null, updatedAt: 160,
  };
}

function aClaimedCheckpoint(leaseId: string, cumulativeAmount: bigint): StoredCheckpoint {
  return {
    leaseId: BigInt(leaseId), seq: 1n, usageRoot: `0x${'1'.repeat(64)}`, cumulativeAmount, periodEnd: 160n, resultDigest: `0x${'0'.repeat(64)}`,
    recordCount: 1n, final: true, providerSig: '0x', tenantSig: null, status: 'claimed', createdAt: 160,
  };
}

describe('the daemon API\'s metrics', () => {
  let api: RunningApi | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });

  async function apiOver(store: Store, overrides: Partial<StartApiOptions> = {}): Promise<RunningApi> {
    const parsed = configSchema.parse({ dataDir: '/nonexistent' });
    const config = { ...parsed, dataDir: tempDir('provider-metrics-'), api: { ...parsed.api, host: '127.0.0.1', port: 0 } };
    const providerKey = Wallet.createRandom();
    const marketplace = Wallet.createRandom().address;
    const clock = manualClock(200_000);
    const chain = { settings: { chainId: CHAIN_ID }, marketplace: { read: () => Promise.resolve(0n) } } as unknown as ChainClient;
    return startApi({
      config,
      service: new FakeProviderService({ providerKey, domain: marketplaceDomain(CHAIN_ID, marketplace), chainId: CHAIN_ID, marketplace }),
      store,
      ledger: new AllocationLedger(anAllocatable(), clock),
      backend: new MemoryBackend({ clock }),
      chain,
      provider: providerKey.address,
      clock,
      log: silentLogger(),
      version: '9.9.9',
      dockerRoot: () => Promise.resolve(tmpdir()),
      claimDeadline: () => undefined,
      ...overrides,
    });
  }

  function storeWithClaims(): Store {
    const store = openStore(':memory:');
    for (const [leaseId, amount] of [['1', 300n], ['2', 500n]] as const) {
      store.leases.insert(aLease(leaseId), { fromState: 'quoted', toState: 'stopping', event: 'x', reason: null, at: 100 });
      store.checkpoints.insert(aClaimedCheckpoint(leaseId, amount));
    }
    return store;
  }

  const sample = async (prefix: string): Promise<string | undefined> => (await api!.metrics.render()).split('\n').find((line) => line.startsWith(prefix));

  it('reports as claimed the sum of every lease\'s claim still pending, not the last lease\'s', async () => {
    api = await apiOver(storeWithClaims());
    expect(await sample('provider_earnings_token_base_units{kind="claimed"}')).toBe('provider_earnings_token_base_units{kind="claimed"} 800');
  });

  it('exports what the fleet alerts read: earnings proven, reachability, disk, the nearest claim deadline, the build', async () => {
    // Lease 2's unpaid usage must be claimed within 900 s to be paid in full (the manual clock is at 200 s); lease 1's later.
    const deadlines = new Map([['1', 200 + 5_000], ['2', 200 + 900]]);
    api = await apiOver(storeWithClaims(), { claimDeadline: (leaseId) => deadlines.get(leaseId) });
    expect(await sample('provider_earnings_base_units_total ')).toBe('provider_earnings_base_units_total 800');
    expect(await sample('provider_claim_deadline_seconds ')).toBe('provider_claim_deadline_seconds 900');
    expect(await sample('provider_rpc_up ')).toBe('provider_rpc_up 1');
    expect(await sample('provider_docker_up ')).toBe('provider_docker_up 1');
    expect(await sample('provider_accepting ')).toBe('provider_accepting 1');
    expect(await sample('provider_build_info{')).toBe(`provider_build_info{version="9.9.9",node_version="${process.version}"} 1`);
    for (const volume of ['data_dir', 'docker_root']) {
      expect(Number((await sample(`provider_disk_free_bytes{volume="${volume}"}`))?.split(' ')[1])).toBeGreaterThan(0);
      expect(Number((await sample(`provider_disk_size_bytes{volume="${volume}"}`))?.split(' ')[1])).toBeGreaterThan(0);
    }
    // Exported at 0 before any failure, so increase() sees the first one.
    expect(await sample('provider_claim_failures_total{reason="TX_REVERTED"}')).toBe('provider_claim_failures_total{reason="TX_REVERTED"} 0');
  });

  it('says the RPC is down and leaves out a Docker root it cannot measure, and nothing owed is a deadline of +Inf', async () => {
    const service = new FakeProviderService({ providerKey: Wallet.createRandom(), domain: marketplaceDomain(CHAIN_ID, Wallet.createRandom().address), chainId: CHAIN_ID, marketplace: Wallet.createRandom().address });
    const status = await service.status();
    service.status = () => Promise.resolve({ ...status, chain: { headBlock: null, cursorBlock: null } });
    api = await apiOver(openStore(':memory:'), { service, dockerRoot: () => Promise.resolve('/nonexistent/docker') });
    expect(await sample('provider_rpc_up ')).toBe('provider_rpc_up 0');
    expect(await sample('provider_docker_up ')).toBe('provider_docker_up 1');
    expect(await sample('provider_disk_free_bytes{volume="docker_root"}')).toBeUndefined();
    expect(await sample('provider_claim_deadline_seconds ')).toBe('provider_claim_deadline_seconds +Inf');
    expect(await sample('provider_earnings_base_units_total ')).toBe('provider_earnings_base_units_total 0');
  });
});
