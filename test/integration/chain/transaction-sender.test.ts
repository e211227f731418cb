import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonRpcProvider } from 'ethers';
import { TransactionSender, type Checkpoint, type SenderPolicy } from '../../../src/chain';
import { marketplaceAt } from '../../../src/chain/marketplace';
import { createRpcProvider } from '../../../src/chain/rpc';
import { openStore, type OutboxRepository, type Store } from '../../../src/store';
import { claimKey } from '../../../src/settlement';
import { silentLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { advance } from './fixture';
import { honestRecords, openV2, registerV2, signedCheckpoint, startDualFixture, stopDualFixture, type DualFixture } from './v2/fixture-v2';
import { TcpProxy } from './tcp-proxy';
import { until as untilShared } from '../../support/until';

jest.setTimeout(60_000);

let fx: DualFixture;
let proxy: TcpProxy;
let dir: string;
let ticker: NodeJS.Timeout | undefined;

const FAST: Partial<SenderPolicy> = {
  confirmations: 2,
  receiptPollMs: 50,
  rebroadcastMs: 500,
  bumpAfterMs: 60_000,
  backoff: { initialMs: 50, maxMs: 400 },
};

beforeAll(async () => {
  fx = await startDualFixture();
  await registerV2(fx);
  proxy = await TcpProxy.start(fx.anvil.port);
  dir = mkdtempSync(join(tmpdir(), 'provider-sender-'));
});

afterAll(async () => {
  stopMining();
  await proxy?.cut();
  await stopDualFixture(fx);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  stopMining();
  await fx.rpc.send('evm_setAutomine', [true]);
});

/** Mines a block every 50 ms straight on anvil (not through the proxy), so confirmations accrue. */
function startMining(): void {
  ticker ??= setInterval(() => void fx.rpc.send('evm_mine', []).catch(() => undefined), 50);
}
function stopMining(): void {
  if (ticker) clearInterval(ticker);
  ticker = undefined;
}

interface Harness {
  store: Store;
  rpc: JsonRpcProvider;
  outbox: OutboxRepository;
  sender: TransactionSender;
  close(): Promise<void>;
}

function harness(file: string, policy: Partial<SenderPolicy> = FAST): Harness {
  const store = openStore(join(dir, file));
  const rpc = createRpcProvider(proxy.url, { chainId: fx.chainId });
  const outbox = store.outbox;
  const market = marketplaceAt(fx.v2.target as string, rpc);
  const sender = new TransactionSender({
    rpc,
    signer: fx.provider,
    chainId: Number(fx.chainId),
    outbox,
    clock: systemClock,
    log: silentLogger(),
    policy,
    describeRevert: (data) => market.describeRevert(data),
  });
  return {
    store,
    rpc,
    outbox,
    sender,
    close: async () => {
      await sender.stop();
      rpc.destroy();
      store.close();
    },
  };
}

/** A claim intent for a fresh lease, over one honest record of its first 100 s (or a checkpoint altered by `overrides`). */
async function aClaimIntent(overrides: Partial<Checkpoint> = {}) {
  const { leaseId, terms } = await openV2(fx);
  await advance(fx, 100n);
  const { checkpoint, signature } = await signedCheckpoint(fx, leaseId, honestRecords(leaseId, terms, 1, 100n), overrides);
  const market = marketplaceAt(fx.v2.target as string, null);
  const data = market.encode('claim', [terms, checkpoint, signature]);
  return { leaseId, intent: { key: claimKey(leaseId, 1), to: market.address, data } };
}

async function claimsSubmitted(leaseId: bigint): Promise<number> {
  const logs = await fx.v2.queryFilter(fx.v2.filters.ClaimSubmitted!(leaseId));
  return logs.length;
}

async function providerNonce(): Promise<number> {
  return fx.rpc.getTransactionCount(fx.provider.address, 'latest');
}

describe('TransactionSender', () => {
  it('sends a claim and reports it confirmed at depth; the same key never sends twice', async () => {
    const { leaseId, intent } = await aClaimIntent();
    const h = harness('happy.sqlite');
    const before = await providerNonce();
    startMining();
    h.sender.start();
    const outcome = await h.sender.send(intent, { timeoutMs: 15_000 });
    expect(outcome.state).toBe('confirmed');
    const again = await h.sender.send(intent, { timeoutMs: 5_000 });
    expect(again).toEqual(outcome);
    expect(await providerNonce()).toBe(before + 1);
    expect(await claimsSubmitted(leaseId)).toBe(1);
    await h.close();
  });

  it('does not send what the contract would refuse, and names the error', async () => {
    const { intent } = await aClaimIntent({ cumulativeAmount: 10n ** 30n });
    const h = harness('refused.sqlite');
    const before = await providerNonce();
    h.sender.start();
    const outcome = await h.sender.send(intent, { timeoutMs: 15_000 });
    expect(outcome).toMatchObject({ state: 'failed', code: 'TX_REJECTED' });
    expect(outcome.state === 'failed' && outcome.error).toMatch(/ClaimAboveCap/);
    expect(await providerNonce()).toBe(before);
    await h.close();
  });

  it('lands a claim exactly once when the RPC dies mid-claim and comes back', async () => {
    const { leaseId, intent } = await aClaimIntent();
    const h = harness('outage.sqlite');
    const before = await providerNonce();
    await fx.rpc.send('evm_setAutomine', [false]);
    h.sender.start();
    h.sender.submit(intent);
    const id = h.outbox.byKey(intent.key)!.id;
    await until('the claim to be broadcast', () => h.outbox.attempts(id)[0]?.broadcastAt != null);

    // The RPC goes away with the claim out, and the claim is mined while the client cannot see it.
    await proxy.cut();
    startMining();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(h.outbox.byKey(intent.key)!.state).toBe('pending');

    await proxy.restore();
    const outcome = await h.sender.waitFor(intent.key, { timeoutMs: 15_000 });
    expect(outcome.state).toBe('confirmed');
    expect(h.outbox.attempts(id)).toHaveLength(1);
    expect(await providerNonce()).toBe(before + 1);
    expect(await claimsSubmitted(leaseId)).toBe(1);
    await h.close();
  });

  it('waits out an RPC that is down before anything was sent', async () => {
    const { leaseId, intent } = await aClaimIntent();
    const h = harness('down-first.sqlite');
    const before = await providerNonce();
    await proxy.cut();
    h.sender.start();
    h.sender.submit(intent);
    await new Promise((r) => setTimeout(r, 800));
    expect(h.outbox.byKey(intent.key)!.state).toBe('queued');
    await proxy.restore();
    startMining();
    expect((await h.sender.waitFor(intent.key, { timeoutMs: 15_000 })).state).toBe('confirmed');
    expect(await providerNonce()).toBe(before + 1);
    expect(await claimsSubmitted(leaseId)).toBe(1);
    await h.close();
  });

  it('after a restart, re-broadcasts the recorded signed transaction instead of sending again', async () => {
    const { leaseId, intent } = await aClaimIntent();
    const before = await providerNonce();
    await fx.rpc.send('evm_setAutomine', [false]);
    const first = harness('restart.sqlite');
    first.sender.start();
    first.sender.submit(intent);
    const id = first.outbox.byKey(intent.key)!.id;
    await until('the claim to be broadcast', () => first.outbox.attempts(id)[0]?.broadcastAt != null);
    const signed = first.outbox.attempts(id)[0]!;
    await first.close();
    // The node lost its mempool too (a restart of its own).
    await fx.rpc.send('anvil_dropAllTransactions', []);

    const second = harness('restart.sqlite');
    second.sender.start();
    startMining();
    const outcome = await second.sender.waitFor(intent.key, { timeoutMs: 15_000 });
    expect(outcome).toMatchObject({ state: 'confirmed', txHash: signed.txHash });
    expect(second.outbox.attempts(id)).toHaveLength(1);
    expect(await providerNonce()).toBe(before + 1);
    expect(await claimsSubmitted(leaseId)).toBe(1);
    await second.close();
  });

  it('replaces a transaction that is not mined in time with higher fees, and one of them lands', async () => {
    const { leaseId, intent } = await aClaimIntent();
    const before = await providerNonce();
    await fx.rpc.send('evm_setAutomine', [false]);
    const h = harness('bump.sqlite', { ...FAST, bumpAfterMs: 300 });
    h.sender.start();
    h.sender.submit(intent);
    const id = h.outbox.byKey(intent.key)!.id;
    await until('a replacement', () => h.outbox.attempts(id).length >= 2);
    const [first, second] = h.outbox.attempts(id) as [import('../../../src/store').OutboxAttempt, import('../../../src/store').OutboxAttempt];
    expect(second.maxFeePerGas * 100n).toBeGreaterThanOrEqual(first.maxFeePerGas * 120n);
    startMining();
    const outcome = await h.sender.waitFor(intent.key, { timeoutMs: 15_000 });
    expect(outcome.state).toBe('confirmed');
    expect(h.outbox.attempts(id).map((a) => a.txHash)).toContain(outcome.state === 'confirmed' && outcome.txHash);
    expect(await providerNonce()).toBe(before + 1);
    expect(await claimsSubmitted(leaseId)).toBe(1);
    await h.close();
  });

  it('sends again, once, a transaction whose block was reorganised away before it was deep enough', async () => {
    const { leaseId, intent } = await aClaimIntent();
    const before = await providerNonce();
    const h = harness('reorg.sqlite', { ...FAST, confirmations: 3, rebroadcastMs: 100 });
    h.sender.start();
    h.sender.submit(intent);
    const id = h.outbox.byKey(intent.key)!.id;
    await until('the claim to be mined', async () => {
      const hash = h.outbox.attempts(id)[0]?.txHash;
      return hash !== undefined && (await fx.rpc.getTransactionReceipt(hash)) !== null;
    });
    // The block with the claim is replaced by an empty one, and its transaction forgotten.
    await fx.rpc.send('evm_setAutomine', [false]);
    await fx.rpc.send('anvil_reorg', [1, []]);
    await fx.rpc.send('anvil_dropAllTransactions', []);
    expect(await fx.rpc.getTransactionReceipt(h.outbox.attempts(id)[0]!.txHash)).toBeNull();
    expect(h.outbox.byKey(intent.key)!.state).toBe('pending');
    startMining();
    const outcome = await h.sender.waitFor(intent.key, { timeoutMs: 15_000 });
    expect(outcome.state).toBe('confirmed');
    expect(await providerNonce()).toBe(before + 1);
    expect(await claimsSubmitted(leaseId)).toBe(1);
    await h.close();
  });

  it('sends queued intents in order with consecutive nonces', async () => {
    const a = await aClaimIntent();
    const b = await aClaimIntent();
    const h = harness('order.sqlite');
    const before = await providerNonce();
    startMining();
    h.sender.submit(a.intent);
    h.sender.submit(b.intent);
    h.sender.start();
    await h.sender.waitFor(b.intent.key, { timeoutMs: 15_000 });
    expect(h.outbox.byKey(a.intent.key)!.nonce).toBe(before);
    expect(h.outbox.byKey(b.intent.key)!.nonce).toBe(before + 1);
    expect(await providerNonce()).toBe(before + 2);
    await h.close();
  });
});

function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<true> {
  return untilShared(what, async () => (await check()) || undefined, timeoutMs, 25);
}
