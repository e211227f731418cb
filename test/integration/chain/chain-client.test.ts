import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainClient, type ChainSettings, type MarketplaceEvent } from '../../../src/chain';
import { openStore } from '../../../src/store';
import { claimKey } from '../../../src/settlement';
import { silentLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { isProviderError } from '../../../src/errors';
import { freePort } from '../../../src/devnet';
import { aCheckpoint, advance, latestTimestamp, openLease, registerProvider, sign, startFixture, stopFixture, type Fixture } from './fixture';

jest.setTimeout(60_000);

let fx: Fixture;
let dir: string;
beforeAll(async () => {
  fx = await startFixture();
  await registerProvider(fx);
  dir = mkdtempSync(join(tmpdir(), 'provider-client-'));
});
afterAll(async () => {
  await stopFixture(fx);
  rmSync(dir, { recursive: true, force: true });
});

function settings(overrides: Partial<ChainSettings> = {}): ChainSettings {
  return {
    rpcUrl: fx.anvil.rpcUrl,
    wsUrl: fx.anvil.wsUrl,
    chainId: Number(fx.chainId),
    marketplaceAddress: fx.market.target as string,
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
      const leaseId = await openLease(fx);
      await advance(fx, 60n);
      const cp = aCheckpoint(leaseId, { cumulativeAmount: 1_000n, periodEnd: await latestTimestamp(fx) });
      const data = client.marketplace.encode('claim', [cp, await sign(fx, fx.provider, cp)]);
      const outcome = await client.sender.send({ key: claimKey(leaseId, 1), to: client.marketplace.address, data }, { timeoutMs: 15_000 });
      expect(outcome.state).toBe('confirmed');
      const deadline = Date.now() + 10_000;
      while (!seen.some((e) => e.name === 'ClaimSubmitted') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const claim = seen.find((e) => e.name === 'ClaimSubmitted');
      expect(claim?.name === 'ClaimSubmitted' && claim.args).toMatchObject({ leaseId, cumulativeAmount: 1_000n, usageRoot: cp.usageRoot });
      const pending = await client.marketplace.read('getPendingClaim', [leaseId]);
      expect(pending.cumulativeAmount).toBe(1_000n);
    } finally {
      clearInterval(ticker);
      await client.stop();
      store.close();
    }
  });
});
