import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainClient, hashCheckpoint, payableTo, type ChainSettings, type MarketplaceEvent } from '../../../src/chain';
import { openStore } from '../../../src/store';
import { claimKey } from '../../../src/settlement';
import { silentLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { isProviderError } from '../../../src/errors';
import { freePort } from '../../../src/devnet';
import { advance } from './fixture';
import { honestRecords, openV2, registerV2, signedCheckpoint, startDualFixture, stopDualFixture, type DualFixture } from './v2/fixture-v2';

jest.setTimeout(60_000);

let fx: DualFixture;
let dir: string;
beforeAll(async () => {
  fx = await startDualFixture();
  await registerV2(fx);
  dir = mkdtempSync(join(tmpdir(), 'provider-client-'));
});
afterAll(async () => {
  await stopDualFixture(fx);
  rmSync(dir, { recursive: true, force: true });
});

function settings(overrides: Partial<ChainSettings> = {}): ChainSettings {
  return {
    rpcUrl: fx.anvil.rpcUrl,
    wsUrl: fx.anvil.wsUrl,
    chainId: Number(fx.chainId),
    marketplaceAddress: fx.v2.target as string,
    confirmations: 1,
    pollIntervalMs: 100,
    startBlock: 0,
    ...overrides,
  };
}

describe('ChainClient', () => {
  it('refuses an RPC that serves another chain', async () => {
    const store = openStore(join(dir, 'wrong.sqlite'));
    const client = new ChainClient(settings({ chainId: 1 }), { signer: fx.provider, store, clock: systemClock, log: silentLogger() });
    const err = await client.verify().catch((e: unknown) => e);
    expect(isProviderError(err, 'CHAIN_ID_MISMATCH')).toBe(true);
    await client.stop();
    store.close();
  });

  it('gives up with RPC_UNAVAILABLE only when told to wait no longer', async () => {
    const store = openStore(join(dir, 'down.sqlite'));
    const port = await freePort();
    const client = new ChainClient(settings({ rpcUrl: `http://127.0.0.1:${port}` }), { signer: fx.provider, store, clock: systemClock, log: silentLogger() });
    const err = await client.verify({ timeoutMs: 300 }).catch((e: unknown) => e);
    expect(isProviderError(err, 'RPC_UNAVAILABLE')).toBe(true);
    await client.stop();
    store.close();
  });

  it('sends a claim through the sender and sees it come back through the follower', async () => {
    const store = openStore(join(dir, 'client.sqlite'));
    const client = new ChainClient(settings(), { signer: fx.provider, store, clock: systemClock, log: silentLogger() });
    await client.verify();
    const seen: MarketplaceEvent[] = [];
    client.follow('marketplace', (events) => seen.push(...events));
    const ticker = setInterval(() => void fx.rpc.send('evm_mine', []).catch(() => undefined), 100);
    try {
      client.start();
      const { leaseId, terms } = await openV2(fx);
      await advance(fx, 60n);
      const records = honestRecords(leaseId, terms, 1, 60n);
      const { checkpoint: cp, signature } = await signedCheckpoint(fx, leaseId, records);
      const data = client.marketplace.encode('claim', [terms, cp, signature]);
      const outcome = await client.sender.send({ key: claimKey(leaseId, 1), to: client.marketplace.address, data }, { timeoutMs: 15_000 });
      expect(outcome.state).toBe('confirmed');
      const deadline = Date.now() + 10_000;
      while (!seen.some((e) => e.name === 'ClaimSubmitted') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const claim = seen.find((e) => e.name === 'ClaimSubmitted');
      // V2's ClaimSubmitted names the claim by its checkpoint's EIP-712 digest, not by its root.
      expect(claim?.name === 'ClaimSubmitted' && claim.args).toMatchObject({
        leaseId,
        cumulativeAmount: cp.cumulativeAmount,
        checkpoint: hashCheckpoint(fx.v2Domain, cp),
      });
      const lease = await client.marketplace.read('getLease', [leaseId]);
      expect(lease.pending).toBe(payableTo(cp.cumulativeAmount, terms.deposit));
      expect(lease.claimDigest).toBe(hashCheckpoint(fx.v2Domain, cp));
    } finally {
      clearInterval(ticker);
      await client.stop();
      store.close();
    }
  });
});
