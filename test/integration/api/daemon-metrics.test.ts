import { Wallet } from 'ethers';
import { AllocationLedger } from '../../../src/capacity';
import { marketplaceDomain, type ChainClient } from '../../../src/chain';
import { configSchema } from '../../../src/config';
import { startApi, type RunningApi } from '../../../src/daemon/api';
import { MemoryBackend } from '../../../src/runtime';
import { silentLogger } from '../../../src/log';
import { openStore, type StoredCheckpoint, type StoredLease } from '../../../src/store';
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

  it('reports as claimed the sum of every lease\'s claim still pending, not the last lease\'s', async () => {
    const store = openStore(':memory:');
    for (const [leaseId, amount] of [['1', 300n], ['2', 500n]] as const) {
      store.leases.insert(aLease(leaseId), { fromState: 'quoted', toState: 'stopping', event: 'x', reason: null, at: 100 });
      store.checkpoints.insert(aClaimedCheckpoint(leaseId, amount));
    }
    const parsed = configSchema.parse({ dataDir: '/nonexistent' });
    const config = { ...parsed, api: { ...parsed.api, host: '127.0.0.1', port: 0 } };
    const providerKey = Wallet.createRandom();
    const marketplace = Wallet.createRandom().address;
    const clock = manualClock(200_000);
    const chain = { settings: { chainId: CHAIN_ID }, marketplace: { read: () => Promise.resolve(0n) } } as unknown as ChainClient;
    api = await startApi({
      config,
      service: new FakeProviderService({ providerKey, domain: marketplaceDomain(CHAIN_ID, marketplace), chainId: CHAIN_ID, marketplace }),
      store,
      ledger: new AllocationLedger(anAllocatable(), clock),
      backend: new MemoryBackend({ clock }),
      chain,
      provider: providerKey.address,
      clock,
      log: silentLogger(),
    });
    const claimed = (await api.metrics.render()).split('\n').find((line) => line.startsWith('provider_earnings_token_base_units{kind="claimed"}'));
    expect(claimed).toBe('provider_earnings_token_base_units{kind="claimed"} 800');
  });
});
