import { Contract, Wallet, type InterfaceAbi, type JsonRpcProvider } from 'ethers';
import type { QuoteResponse, UsageView } from '../../../src/api';
import { createRpcProvider, deployMarketplace, deployMockToken, hashQuote, marketplaceDomain, signCheckpoint, signQuote, usageAmount, usageTree, usageLeafValues, type Quote, type UsageRecord } from '../../../src/chain';
import { marketplaceAbi } from '../../../src/chain/artifacts/marketplace';
import { mockTokenAbi } from '../../../src/chain/artifacts/mock-token';
import { devPrivateKey, startAnvil, type AnvilInstance } from '../../../src/devnet';
import { isQuoteFault, isRefusedWith, isUsageFault, TenantClient } from '../../../src/tenant';
import { CHAIN_ID, startApi, type ApiHarness } from '../../support/api-harness';
import { FAKE_RATES } from '../../support/fake-provider-service';

jest.setTimeout(60_000);

const TOKEN = 10n ** 18n;
const MIN_BOND = 100n * TOKEN;
const DEPOSIT = 10n ** 12n;

let anvil: AnvilInstance;
let rpc: JsonRpcProvider;
let provider: Wallet;
let tenant: Wallet;
let other: Wallet;
let market: Contract;
let token: Contract;
let h: ApiHarness;
let client: TenantClient;

const manifest = { image: 'busybox:1.36', command: ['echo', 'hi'], resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 }, maxDurationSeconds: 600 };

beforeAll(async () => {
  anvil = await startAnvil({ blockTimeSeconds: 0, chainId: CHAIN_ID });
  rpc = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId, pollingIntervalMs: 50 });
  const [deployer, p, t, o] = [0, 1, 2, 3].map((i) => new Wallet(devPrivateKey(i), rpc)) as [Wallet, Wallet, Wallet, Wallet];
  provider = p;
  tenant = t;
  other = o;
  const tokenAddress = await deployMockToken(deployer);
  const marketAddress = await deployMarketplace(deployer, { tokenAddress, minBond: MIN_BOND, challengeWindowSeconds: 3_600n, unbondingDelaySeconds: 86_400n });
  token = new Contract(tokenAddress, mockTokenAbi as unknown as InterfaceAbi, deployer);
  market = new Contract(marketAddress, marketplaceAbi as unknown as InterfaceAbi, deployer);
  for (const who of [provider, tenant, other]) await (await token.getFunction('mint')(who.address, 1_000n * TOKEN)).wait();
  await (await (token.connect(provider) as Contract).getFunction('approve')(marketAddress, MIN_BOND)).wait();
  await (await (market.connect(provider) as Contract).getFunction('registerProvider')('http://127.0.0.1', '{}', MIN_BOND)).wait();
  h = await startApi({ providerKey: provider, marketplace: marketAddress });
  client = new TenantClient({ signer: tenant, apiUrl: h.url, chainId: CHAIN_ID, chain: rpc });
});

afterAll(async () => {
  await h?.close();
  rpc?.destroy();
  await anvil?.stop();
});

afterEach(() => {
  h.service.tamperQuote = undefined;
});

const domain = () => marketplaceDomain(CHAIN_ID, market.target as string);

/** Makes the provider answer with a quote changed by `change`, re-signed by `signer`. */
function lie(change: (q: Quote) => Quote, signer: Wallet = provider): void {
  h.service.tamperQuote = async (r: QuoteResponse) => {
    const quote = change({ ...r.quote });
    return { ...r, quote, signature: await signQuote(signer, domain(), quote), quoteHash: hashQuote(domain(), quote) };
  };
}

async function openedLease(): Promise<{ leaseId: bigint; startedAt: bigint }> {
  const quote = await client.quote(manifest);
  const opened = await client.open(quote, DEPOSIT);
  h.service.addLease(opened.leaseId.toString(), tenant.address);
  return opened;
}

function records(leaseId: bigint, startedAt: bigint, spans: [number, number][]): Omit<UsageRecord, 'amount'>[] {
  return spans.map(([from, to], i) => ({
    leaseId,
    seq: BigInt(i),
    t0: startedAt + BigInt(from),
    t1: startedAt + BigInt(to),
    cpuMillis: 1_500n * BigInt(i + 1),
    memoryByteSeconds: 10n * 2n ** 20n,
    gpuMillis: 0n,
    rxBytes: 100n,
    txBytes: 2n ** 20n,
  }));
}

describe('TenantClient quote verification', () => {
  it('accepts an honest quote from the registered provider', async () => {
    const quote = await client.quote(manifest);
    expect(quote.quote.provider).toBe(provider.address);
    expect(quote.quote.tenant).toBe(tenant.address);
  });

  it.each([
    ['a forged signature', 'bad-signature', () => lie((q) => q, other)],
    ['a quote for another manifest', 'manifest-hash', () => lie((q) => ({ ...q, manifestHash: `0x${'ab'.repeat(32)}` }))],
    ['a quote for another tenant', 'other-tenant', () => lie((q) => ({ ...q, tenant: other.address }))],
    ['an expired quote', 'expired', () => lie((q) => ({ ...q, expiresAt: BigInt(Math.floor(Date.now() / 1000) - 1) }))],
    ['rates above the offered card', 'rates', () => lie((q) => ({ ...q, rates: { ...q.rates, perCpuSecond: q.rates.perCpuSecond * 10n } }))],
    ['a longer duration than asked', 'duration', () => lie((q) => ({ ...q, maxDuration: 10_000n }))],
  ])('refuses %s', async (_what, fault, arrange) => {
    arrange();
    const err = await client.quote(manifest).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'QUOTE_UNTRUSTED' });
    expect(isQuoteFault(err, fault as never)).toBe(true);
  });

  it('refuses a quote whose quoteHash is not its hash', async () => {
    h.service.tamperQuote = (r) => ({ ...r, quoteHash: `0x${'00'.repeat(32)}` });
    expect(isQuoteFault(await client.quote(manifest).catch((e: unknown) => e), 'quote-hash')).toBe(true);
  });

  it('refuses a manifest it cannot send before asking', async () => {
    await expect(client.quote({ ...manifest, privileged: true } as never)).rejects.toThrow(/privileged/);
  });
});

describe('TenantClient on-chain and lease routes', () => {
  it('opens the lease on-chain with the verified quote', async () => {
    const before = (await token.getFunction('balanceOf')(tenant.address)) as bigint;
    const { leaseId } = await openedLease();
    const lease = await market.getFunction('getLease')(leaseId);
    expect(lease.tenant).toBe(tenant.address);
    expect(lease.provider).toBe(provider.address);
    expect(lease.escrow).toBe(DEPOSIT);
    expect((await token.getFunction('balanceOf')(tenant.address)) as bigint).toBe(before - DEPOSIT);
  });

  it('reads its lease, and another tenant is refused', async () => {
    const { leaseId } = await openedLease();
    expect((await client.lease(leaseId)).leaseId).toBe(leaseId.toString());
    const stranger = new TenantClient({ signer: other, apiUrl: h.url, chainId: CHAIN_ID, chain: rpc });
    const err = await stranger.lease(leaseId).catch((e: unknown) => e);
    expect(isRefusedWith(err, 'AUTH_FORBIDDEN')).toBe(true);
  });

  it('streams logs over the WebSocket until the end message', async () => {
    const { leaseId } = await openedLease();
    h.service.pushLogs(leaseId.toString(), 'a', 'b', 'c');
    const lines: string[] = [];
    for await (const entry of client.logs(leaseId, { tail: 2 })) lines.push(entry.line);
    expect(lines).toEqual(['b', 'c']);
  });

  it('closes the lease on-chain', async () => {
    const { leaseId } = await openedLease();
    const { closedAt } = await client.close(leaseId);
    expect(closedAt).toBeGreaterThan(0n);
    expect((await market.getFunction('getLease')(leaseId)).closedAt).toBe(closedAt);
  });
});

describe('TenantClient usage verification', () => {
  let leaseId: bigint;
  let honest: UsageView;

  beforeAll(async () => {
    const opened = await openedLease();
    leaseId = opened.leaseId;
    await rpc.send('evm_increaseTime', [40]);
    await rpc.send('evm_mine', []);
    await h.service.setUsage(leaseId.toString(), records(leaseId, opened.startedAt, [[0, 10], [10, 20], [20, 30]]), [2, 3]);
    honest = await client.usage(leaseId);
  });

  const tampered = (change: (v: UsageView) => void): UsageView => {
    const copy = structuredClone(honest);
    change(copy);
    return copy;
  };

  it('accepts an honest usage view, checked against the chain', async () => {
    const verified = await client.verifyUsage(honest);
    expect(verified.total).toBe(honest.records.reduce((s, r) => s + r.record.amount, 0n));
    expect(verified.latest.checkpoint.seq).toBe(2n);
  });

  it('rejects a tampered record: its leaf is not under the signed root', async () => {
    const view = tampered((v) => {
      v.records[1]!.record.rxBytes += 1n;
    });
    const err = await client.verifyUsage(view).catch((e: unknown) => e);
    expect(isUsageFault(err, 'root')).toBe(true);
    expect((err as Error).message).toMatch(/commits to no prefix/);
  });

  it('rejects a re-priced record: the checkpoint\'s cumulative amount no longer adds up', async () => {
    const view = tampered((v) => {
      const r = v.records[1]!.record;
      r.cpuMillis += 1_000n;
      r.amount = usageAmount(v.rates, r);
    });
    expect(isUsageFault(await client.verifyUsage(view).catch((e: unknown) => e), 'cumulative')).toBe(true);
  });

  it('rejects a record whose amount does not follow from the rates', async () => {
    const view = tampered((v) => {
      v.records[0]!.record.amount += 1n;
    });
    expect(isUsageFault(await client.verifyUsage(view).catch((e: unknown) => e), 'amount')).toBe(true);
  });

  it('rejects a bad proof', async () => {
    const view = tampered((v) => {
      v.records[2]!.proof[0] = `0x${'11'.repeat(32)}`;
    });
    expect(isUsageFault(await client.verifyUsage(view).catch((e: unknown) => e), 'proof')).toBe(true);
  });

  it('rejects a gap between intervals, even signed and committed honestly', async () => {
    const gapLease = await openedLease();
    await rpc.send('evm_increaseTime', [40]);
    await rpc.send('evm_mine', []);
    const view = await h.service.setUsage(gapLease.leaseId.toString(), records(gapLease.leaseId, gapLease.startedAt, [[0, 10], [12, 20]]));
    const err = await client.verifyUsage(view).catch((e: unknown) => e);
    expect(isUsageFault(err, 'interval')).toBe(true);
    expect((err as Error).message).toMatch(/gap/);
  });

  it('rejects rates other than the lease was opened with', async () => {
    const view = tampered((v) => {
      v.rates = { ...FAKE_RATES, perSecond: FAKE_RATES.perSecond + 1n };
    });
    expect(isUsageFault(await client.verifyUsage(view).catch((e: unknown) => e), 'rates')).toBe(true);
  });

  it('rejects a checkpoint not signed by the provider', async () => {
    const view = tampered((v) => {
      v.checkpoints[1]!.providerSignature = v.checkpoints[0]!.providerSignature;
    });
    expect(isUsageFault(await client.verifyUsage(view).catch((e: unknown) => e), 'checkpoint-signature')).toBe(true);
  });

  it('rejects a view that hides a claim the provider made on-chain', async () => {
    const claimLease = await openedLease();
    await rpc.send('evm_increaseTime', [40]);
    await rpc.send('evm_mine', []);
    const view = await h.service.setUsage(claimLease.leaseId.toString(), records(claimLease.leaseId, claimLease.startedAt, [[0, 10], [10, 20]]));
    const hidden = records(claimLease.leaseId, claimLease.startedAt, [[0, 10], [10, 20], [20, 30]]).map((r) => ({ ...r, amount: usageAmount(FAKE_RATES, r) }));
    const block = await rpc.getBlock('latest');
    const cp = { leaseId: claimLease.leaseId, seq: 9n, usageRoot: usageTree(hidden).root, cumulativeAmount: hidden.reduce((s, r) => s + r.amount, 0n), periodEnd: BigInt(block!.timestamp), resultDigest: `0x${'00'.repeat(32)}` };
    await (await (market.connect(provider) as Contract).getFunction('claim')(cp, await signCheckpoint(provider, domain(), cp))).wait();
    expect(isUsageFault(await client.verifyUsage(view).catch((e: unknown) => e), 'chain-mismatch')).toBe(true);
  });

  it('countersigns after verifying, and the provider can redeem with that signature', async () => {
    const stored = await client.countersign(leaseId, 2n);
    expect(stored.tenantSignature).toMatch(/^0x/);
    const cp = stored.checkpoint;
    const before = (await token.getFunction('balanceOf')(provider.address)) as bigint;
    await (await (market.connect(provider) as Contract).getFunction('redeem')(cp, stored.providerSignature, stored.tenantSignature)).wait();
    expect((await token.getFunction('balanceOf')(provider.address)) as bigint).toBe(before + cp.cumulativeAmount);
  });

  it('does not countersign a view it cannot verify', async () => {
    const lease = h.service.leases.get(leaseId.toString())!;
    const saved = lease.usage!;
    lease.usage = tampered((v) => {
      v.records[0]!.record.amount += 1n;
    });
    try {
      const err = await client.countersign(leaseId, 2n).catch((e: unknown) => e);
      expect(isUsageFault(err, 'amount')).toBe(true);
    } finally {
      lease.usage = saved;
    }
  });

  it('proofs reach the root the tree gives (sanity of the fixture)', () => {
    const tree = usageTree(honest.records.map((r) => r.record));
    expect(tree.getProof(usageLeafValues(honest.records[0]!.record))).toEqual(honest.records[0]!.proof);
  });
});
