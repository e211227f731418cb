import { Contract, Wallet, type InterfaceAbi, type JsonRpcProvider } from 'ethers';
import type { QuoteResponse, UsageView } from '../../../src/api';
import {
  BURN_ADDRESS,
  checkpointOf,
  createRpcProvider,
  deployMarketplace,
  deployMockToken,
  hashCheckpoint,
  hashQuote,
  hashTerms,
  marketplaceAt,
  marketplaceDomain,
  providerAccount,
  recordAmount,
  signCheckpoint,
  signQuote,
  usageLeafValues,
  usageTree,
  type MeteredUsage,
  type Quote,
  type UsageRecord,
} from '../../../src/chain';
import { marketplaceV2Abi } from '../../../src/chain/artifacts/marketplace-v2';
import { mockTokenAbi } from '../../../src/chain/artifacts/mock-token';
import { devPrivateKey, startAnvil, type AnvilInstance } from '../../../src/devnet';
import { UsageUnverifiedError, isQuoteFault, isRefusedWith, isUsageFault, TenantClient } from '../../../src/tenant';
import { CHAIN_ID, startApi, type ApiHarness } from '../../support/api-harness';
import { FAKE_RATES } from '../../support/fake-provider-service';
import { recordsOf, signedUsageView } from '../../support/usage-view';

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
  const marketAddress = await deployMarketplace(deployer, {
    tokenAddress,
    treasury: BURN_ADDRESS,
    minBond: MIN_BOND,
    challengeWindowSeconds: 3_600n,
    lateWindowSeconds: 86_400n,
    unbondingDelaySeconds: 86_400n,
  });
  token = new Contract(tokenAddress, mockTokenAbi as unknown as InterfaceAbi, deployer);
  market = new Contract(marketAddress, marketplaceV2Abi as unknown as InterfaceAbi, deployer);
  for (const who of [provider, tenant, other]) await (await token.getFunction('mint')(who.address, 1_000n * TOKEN)).wait();
  await (await (token.connect(provider) as Contract).getFunction('approve')(marketAddress, MIN_BOND)).wait();
  await (await (market.connect(provider) as Contract).getFunction('registerProvider')('http://127.0.0.1', '{}', MIN_BOND, provider.address)).wait();
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

/** What the meter measured over each span (seconds from the lease's start), within the 500-millicore allocation. */
function measured(startedAt: bigint, spans: [number, number][]): MeteredUsage[] {
  return spans.map(([from, to], i) => ({
    t0: startedAt + BigInt(from),
    t1: startedAt + BigInt(to),
    cpuMillis: 1_500n * BigInt(i + 1),
    memoryByteSeconds: 10n * 2n ** 20n,
    gpuMillis: 0n,
    rxBytes: 100n,
    txBytes: 2n ** 20n,
  }));
}

/** The fault a refused view was refused with, and for a disputable one the contract's fault the evidence names. */
function faultOf(err: unknown): string {
  if (!(err instanceof UsageUnverifiedError)) throw err;
  const evidence = err.evidence;
  return err.fault === 'disputable' && evidence?.kind === 'records' && evidence.dispute.kind !== 'missing' ? `disputable:${evidence.dispute.fault}` : err.fault;
}

/** Serves, for `leaseId`, the view a dishonest meter signs over `records` (the provider's real key signs it). */
async function serveSigned(leaseId: bigint, records: readonly UsageRecord[], checkpointAfter?: number[]): Promise<UsageView> {
  const view = await signedUsageView(provider, domain(), leaseId, FAKE_RATES, records, checkpointAfter);
  const lease = h.service.leases.get(leaseId.toString())!;
  lease.usage = view;
  lease.view.lastCheckpoint = view.checkpoints.at(-1) ?? null;
  return view;
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
    ['an allocation of more CPU than asked', 'allocation', () => lie((q) => ({ ...q, allocation: { ...q.allocation, cpuMillicores: q.allocation.cpuMillicores * 2n } }))],
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
    const quote = await client.quote(manifest);
    const { leaseId, startedAt } = await client.open(quote, DEPOSIT);
    // V2 keeps a hash of the terms; LeaseOpened announced them, and the client kept them.
    const { terms } = await client.leaseOnChain(leaseId);
    expect(terms).toEqual({ provider: provider.address, tenant: tenant.address, startedAt, deposit: DEPOSIT, rates: quote.quote.rates, allocation: quote.quote.allocation });
    expect((await market.getFunction('getLease')(leaseId)).termsHash).toBe(hashTerms(terms));
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
    expect((await market.getFunction('getLease')(leaseId)).end).toBe(closedAt);
  });
});

describe('TenantClient usage verification', () => {
  let leaseId: bigint;
  let startedAt: bigint;
  let honest: UsageView;
  const spans: [number, number][] = [[0, 10], [10, 20], [20, 30]];

  beforeAll(async () => {
    ({ leaseId, startedAt } = await openedLease());
    await rpc.send('evm_increaseTime', [40]);
    await rpc.send('evm_mine', []);
    await h.service.setUsage(leaseId.toString(), measured(startedAt, spans), [2, 3]);
    honest = await client.usage(leaseId);
  });

  const tampered = (change: (v: UsageView) => void): UsageView => {
    const copy = structuredClone(honest);
    change(copy);
    return copy;
  };
  /** The honest records with record `i` changed and nothing recomputed: what a dishonest meter signs over. */
  const withRecord = (i: number, change: (r: UsageRecord) => Partial<UsageRecord>): UsageRecord[] =>
    recordsOf(leaseId, FAKE_RATES, measured(startedAt, spans)).map((r, j) => (j === i ? { ...r, ...change(r) } : r));

  it('accepts an honest usage view, checked against the chain', async () => {
    const verified = await client.verifyUsage(honest);
    expect(verified.total).toBe(honest.records.reduce((s, r) => s + r.record.amount, 0n));
    expect(verified.latest.seq).toBe(2);
    expect(verified.latest.checkpoint.recordCount).toBe(3n);
  });

  it('rejects a tampered record: its leaf is not under the signed root', async () => {
    const view = tampered((v) => {
      v.records[1]!.record.rxBytes += 1n;
    });
    const err = await client.verifyUsage(view).catch((e: unknown) => e);
    expect(isUsageFault(err, 'proof')).toBe(true);
    expect((err as Error).message).toMatch(/does not reach the root/);
  });

  // V2 has no per-field faults: what a dishonest provider signs is refused as disputable, with the
  // contract's fault the evidence proves (the old 'cumulative', 'amount' and 'interval' cases).
  it.each<[string, () => UsageRecord[], string]>([
    ['a re-priced record whose running total was not carried on', () => withRecord(1, (r) => ({ cpuMillis: r.cpuMillis + 1_000n, amount: recordAmount(FAKE_RATES, { ...r, cpuMillis: r.cpuMillis + 1_000n }) })), 'disputable:TotalMismatch'],
    ['a record whose amount does not follow from the rates', () => withRecord(0, (r) => ({ amount: r.amount + 1n })), 'disputable:AmountMismatch'],
    ['a gap between intervals', () => recordsOf(leaseId, FAKE_RATES, measured(startedAt, [[0, 10], [12, 20]])), 'disputable:NotContiguous'],
  ])('rejects %s, signed and committed by the provider', async (_what, records, fault) => {
    const view = await signedUsageView(provider, domain(), leaseId, FAKE_RATES, records());
    expect(faultOf(await client.verifyUsage(view).catch((e: unknown) => e))).toBe(fault);
  });

  it('rejects a bad proof', async () => {
    const view = tampered((v) => {
      v.records[2]!.proof[0] = `0x${'11'.repeat(32)}`;
    });
    expect(isUsageFault(await client.verifyUsage(view).catch((e: unknown) => e), 'proof')).toBe(true);
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
    const view = await h.service.setUsage(claimLease.leaseId.toString(), measured(claimLease.startedAt, [[0, 10], [10, 20]]));
    const hidden = recordsOf(claimLease.leaseId, FAKE_RATES, measured(claimLease.startedAt, [[0, 10], [10, 20], [20, 30]]));
    const cp = checkpointOf(claimLease.leaseId, hidden);
    const { terms } = await client.leaseOnChain(claimLease.leaseId);
    await (await (market.connect(provider) as Contract).getFunction('claim')(terms, cp, await signCheckpoint(provider, domain(), cp))).wait();
    const err = await client.verifyUsage(view).catch((e: unknown) => e);
    expect(isUsageFault(err, 'chain-mismatch')).toBe(true);
    expect((err as Error).message).toMatch(/pending claim/);
  });

  it('countersigns after verifying, and the provider can redeem with that signature', async () => {
    const stored = await client.countersign(leaseId, 2n);
    expect(stored.tenantSignature).toMatch(/^0x/);
    const cp = stored.checkpoint;
    const { terms } = await client.leaseOnChain(leaseId);
    const marketplace = marketplaceAt(market.target as string, rpc);
    const before = (await providerAccount(marketplace, provider.address)).earnings;
    await (await (market.connect(provider) as Contract).getFunction('redeem')(terms, cp, stored.providerSignature, stored.tenantSignature)).wait();
    // V2 credits the provider's earnings (withdraw() pays them to its payout address).
    expect((await providerAccount(marketplace, provider.address)).earnings).toBe(before + cp.cumulativeAmount);
  });

  it('does not countersign a view it cannot verify', async () => {
    const lease = h.service.leases.get(leaseId.toString())!;
    const saved = lease.usage!;
    await serveSigned(leaseId, withRecord(0, (r) => ({ amount: r.amount + 1n })), [2, 3]);
    try {
      const err = await client.countersign(leaseId, 2n).catch((e: unknown) => e);
      expect(faultOf(err)).toBe('disputable:AmountMismatch');
    } finally {
      lease.usage = saved;
    }
  });

  it('proofs reach the root the tree gives (sanity of the fixture)', () => {
    const tree = usageTree(honest.records.map((r) => r.record));
    expect(tree.getProof(usageLeafValues(honest.records[0]!.record))).toEqual(honest.records[0]!.proof);
  });

  // Last: an upheld dispute slashes the provider for good.
  it('disputes a claim over a record it can disprove: the claim is dropped and the provider slashed', async () => {
    const disputed = await openedLease();
    await rpc.send('evm_increaseTime', [40]);
    await rpc.send('evm_mine', []);
    const records = recordsOf(disputed.leaseId, FAKE_RATES, measured(disputed.startedAt, spans)).map((r, i) => (i === 1 ? { ...r, amount: r.amount + 1n } : r));
    const view = await serveSigned(disputed.leaseId, records);
    const cp = view.checkpoints[0]!;
    const { terms } = await client.leaseOnChain(disputed.leaseId);
    await (await (market.connect(provider) as Contract).getFunction('claim')(terms, cp.checkpoint, cp.providerSignature)).wait();
    expect((await market.getFunction('getLease')(disputed.leaseId)).claimDigest).toBe(hashCheckpoint(domain(), cp.checkpoint));

    const filed = await client.dispute(disputed.leaseId);
    expect(filed).toMatchObject({ filed: true, fault: 'AmountMismatch', evidence: 'record' });
    const lease = await market.getFunction('getLease')(disputed.leaseId);
    expect([lease.pending, lease.payableAt]).toEqual([0n, 0n]);
    // Slashed (status 3): no claim of this provider is paid any more.
    expect((await providerAccount(marketplaceAt(market.target as string, rpc), provider.address)).status).toBe(3);
  });
});
