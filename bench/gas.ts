/**
 * Gas per marketplace call, measured on a fresh anvil: `npm run bench -- gas`. MarketplaceV2 (what
 * the daemon uses) and, in the same run on the same chain, the legacy v1 contract as the baseline
 * (contracts/test/LegacyMarketplace.sol, test/fixtures/legacy-protocol.ts).
 *
 * One scenario for both: lease 1 is opened, redeemed, claimed, finalised, withdrawn, closed and
 * settled; lease 2 has a claim over 8 usage records, one overcharged, disputed with its Merkle
 * proof; lease 3 is disputed for equivocation. V2 adds every other dispute path, a late claim and
 * a withdrawal to an empty payout, each measured on a snapshot that is then reverted.
 *
 * Prints a table (v2, v1, v2/v1, budget), then one JSON line: the v2 figures by call, with
 * {"v1": {...}, "ratio": {...}}, in gas units.
 */
import { Contract, Wallet, id, type InterfaceAbi, type TransactionReceipt } from 'ethers';
import { startAnvil, devPrivateKey, type AnvilInstance } from '../src/devnet';
import {
  checkpointOf,
  createRpcProvider,
  decodeMarketplaceLog,
  deployMarketplace,
  deployMockToken,
  marketplaceAt,
  marketplaceDomain,
  nextRecord,
  signCheckpoint,
  signQuote,
  usageTree,
  ZERO_BYTES32,
  type Allocation,
  type Checkpoint,
  type LeaseTerms,
  type MeteredUsage,
  type Quote,
  type Rates,
  type UsageRecord,
} from '../src/chain';
import { marketplaceV2Abi } from '../src/chain/artifacts/marketplace-v2';
import { mockTokenAbi } from '../src/chain/artifacts/mock-token';
import { legacyMarketplaceAbi } from '../test/fixtures/contracts/legacy-marketplace';
import {
  deployLegacyMarketplace,
  legacyDomain,
  legacyUsageAmount,
  legacyUsageTree,
  signLegacyCheckpoint,
  signLegacyQuote,
  type LegacyCheckpoint,
  type LegacyQuote,
  type LegacyUsageRecord,
} from '../test/fixtures/legacy-protocol';

/** docs/settlement-v2.md's budgets for the calls every lease makes. */
const BUDGET: Record<string, number> = { openLease: 120_000, claim: 80_000, redeem: 70_000, withdraw: 45_000 };
/** Both contracts' amount dispute, one row: v1's disputeUsage, v2's disputeRecord (AmountMismatch). */
const AMOUNT_DISPUTE = 'dispute (amount, 8 records)';
const RATES: Rates = { perSecond: 10n ** 12n, perCpuSecond: 10n ** 13n, perGpuSecond: 10n ** 15n, perGiBEgress: 10n ** 16n };
const ALLOCATION: Allocation = { cpuMillicores: 1_000n, gpuCount: 1n, egressBytesPerSecond: 1_000_000n };
const MIN_BOND = 10n ** 20n;
const WINDOW = 3_600n;
const DEPOSIT = 10n ** 21n;

type Gas = Record<string, bigint>;

/** One anvil, its token and wallets, shared by both contracts' runs. */
interface Chain {
  anvil: AnvilInstance;
  rpc: ReturnType<typeof createRpcProvider>;
  deployer: Wallet;
  provider: Wallet;
  tenant: Wallet;
  /** v2's payout address (holds tokens already, as the provider does: see "withdraw (to an empty payout)"). */
  payout: Wallet;
  finder: Wallet;
  token: Contract;
  now(): Promise<bigint>;
  advance(seconds: number): Promise<void>;
  /** Runs `body` on a snapshot, then reverts it: a call that changes what follows (a slash) is measured alone. */
  aside(body: () => Promise<unknown>): Promise<void>;
}

async function startChain(): Promise<Chain> {
  const anvil = await startAnvil({ blockTimeSeconds: 0 });
  const rpc = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId });
  const [deployer, provider, tenant, finder, payout] = [0, 1, 2, 3, 5].map((i) => new Wallet(devPrivateKey(i), rpc)) as [Wallet, Wallet, Wallet, Wallet, Wallet];
  const token = new Contract(await deployMockToken(deployer), mockTokenAbi as unknown as InterfaceAbi, deployer);
  for (const who of [provider, tenant, payout]) await (await token.getFunction('mint')(who.address, 10n ** 24n)).wait();
  return {
    anvil, rpc, deployer, provider, tenant, payout, finder, token,
    async now() {
      await rpc.send('evm_mine', []);
      return BigInt((await rpc.getBlock('latest'))!.timestamp);
    },
    async advance(seconds) {
      await rpc.send('evm_increaseTime', [seconds]);
      await rpc.send('evm_mine', []);
    },
    async aside(body) {
      const snapshot = (await rpc.send('evm_snapshot', [])) as string;
      await body();
      await rpc.send('evm_revert', [snapshot]);
    },
  };
}

/** Sends `name(...args)` and, with a label, records its gas in `gas`. */
function sender(gas: Gas) {
  return async (label: string | undefined, contract: Contract, name: string, ...args: unknown[]): Promise<TransactionReceipt> => {
    const receipt = (await (await contract.getFunction(name)(...args)).wait()) as TransactionReceipt;
    if (label) gas[label] = receipt.gasUsed;
    return receipt;
  };
}

/** Lets `market` take the provider's, tenant's and payout's tokens. */
async function approve(chain: Chain, market: string): Promise<void> {
  for (const who of [chain.provider, chain.tenant, chain.payout]) await (await (chain.token.connect(who) as Contract).getFunction('approve')(market, 2n ** 255n)).wait();
}

/** The 8 records of 60 s both contracts' amount dispute is measured over. */
function measured8(startedAt: bigint): MeteredUsage[] {
  return Array.from({ length: 8 }, (_, i) => ({
    t0: startedAt + BigInt(i) * 60n,
    t1: startedAt + BigInt(i + 1) * 60n,
    cpuMillis: 45_000n,
    memoryByteSeconds: 60n * 2n ** 32n,
    gpuMillis: 60_000n,
    rxBytes: 10n ** 6n,
    txBytes: 10n ** 7n,
  }));
}

async function measureLegacy(chain: Chain): Promise<Gas> {
  const { provider, tenant } = chain;
  const gas: Gas = {};
  const send = sender(gas);
  const address = await deployLegacyMarketplace(chain.deployer, { tokenAddress: await chain.token.getAddress(), minBond: MIN_BOND, challengeWindowSeconds: WINDOW, unbondingDelaySeconds: 7n * 86_400n });
  const market = new Contract(address, legacyMarketplaceAbi as unknown as InterfaceAbi, chain.deployer);
  const as = (who: Wallet): Contract => market.connect(who) as Contract;
  const domain = legacyDomain(chain.anvil.chainId, address);
  await approve(chain, address);
  await send('registerProvider', as(provider), 'registerProvider', 'https://provider.example', '{"region":"bench","gpus":{"H100":8}}', MIN_BOND);

  let nonce = 1n;
  const open = async (label?: string): Promise<bigint> => {
    const quote: LegacyQuote = { provider: provider.address, tenant: tenant.address, manifestHash: id(`manifest-${nonce}`), rates: RATES, maxRatePerSecond: 10n ** 16n, maxDuration: 86_400n, expiresAt: (await chain.now()) + 300n, nonce: nonce++ };
    const receipt = await send(label, as(tenant), 'openLease', quote, await signLegacyQuote(provider, domain, quote), DEPOSIT);
    return receipt.logs.map((l) => market.interface.parseLog(l)).find((e) => e?.name === 'LeaseOpened')!.args.getValue('leaseId') as bigint;
  };
  const checkpoint = (leaseId: bigint, seq: bigint, cumulativeAmount: bigint, periodEnd: bigint, usageRoot = id(`root-${seq}`)): LegacyCheckpoint => ({ leaseId, seq, usageRoot, cumulativeAmount, periodEnd, resultDigest: ZERO_BYTES32 });
  const signed = (cp: LegacyCheckpoint, by = provider): Promise<string> => signLegacyCheckpoint(by, domain, cp);

  const first = await open('openLease');
  await chain.advance(600);
  const redeemCp = checkpoint(first, 1n, 10n ** 17n, await chain.now());
  await send('redeem', as(provider), 'redeem', redeemCp, await signed(redeemCp), await signed(redeemCp, tenant));
  await chain.advance(600);
  const claimCp = checkpoint(first, 2n, 2n * 10n ** 17n, await chain.now());
  await send('claim', as(provider), 'claim', claimCp, await signed(claimCp));
  await chain.advance(Number(WINDOW));
  await send('finalizeClaim', market, 'finalizeClaim', first);
  await send('withdraw', as(provider), 'withdraw');
  await send('closeLease', as(tenant), 'closeLease', first);
  await chain.advance(Number(WINDOW));
  await send('settleLease', market, 'settleLease', first);

  const second = await open();
  const startedAt = BigInt((await market.getFunction('getLease')(second)).startedAt as bigint);
  const records: LegacyUsageRecord[] = measured8(startedAt).map((usage, i) => {
    const base = { leaseId: second, seq: BigInt(i), ...usage };
    return { ...base, amount: legacyUsageAmount(RATES, base) + (i === 5 ? 1n : 0n) };
  });
  const tree = legacyUsageTree(records);
  await chain.advance(600);
  const disputed = checkpoint(second, 1n, 10n ** 15n, await chain.now(), tree.root);
  await send(undefined, as(provider), 'claim', disputed, await signed(disputed));
  await send(AMOUNT_DISPUTE, as(tenant), 'disputeUsage', second, RATES, records[5], tree.getProof(5));

  const third = await open();
  const [a, b] = [checkpoint(third, 4n, 1n, 0n, id('a')), checkpoint(third, 4n, 1n, 0n, id('b'))];
  await send('disputeEquivocation', as(tenant), 'disputeEquivocation', a, await signed(a), b, await signed(b));
  return gas;
}

async function measureV2(chain: Chain): Promise<Gas> {
  const { provider, tenant, payout, finder } = chain;
  const gas: Gas = {};
  const send = sender(gas);
  const address = await deployMarketplace(chain.deployer, {
    tokenAddress: await chain.token.getAddress(),
    treasury: new Wallet(devPrivateKey(6)).address,
    minBond: MIN_BOND,
    challengeWindowSeconds: WINDOW,
    lateWindowSeconds: 86_400n,
    unbondingDelaySeconds: 7n * 86_400n,
  });
  const market = new Contract(address, marketplaceV2Abi as unknown as InterfaceAbi, chain.deployer);
  const typed = marketplaceAt(address, chain.rpc);
  const as = (who: Wallet): Contract => market.connect(who) as Contract;
  const domain = marketplaceDomain(chain.anvil.chainId, address);
  await approve(chain, address);
  await send('registerProvider', as(provider), 'registerProvider', 'https://provider.example', '{"region":"bench","gpus":{"H100":8}}', MIN_BOND, payout.address);

  let nonce = 1n;
  const open = async (label?: string): Promise<{ leaseId: bigint; terms: LeaseTerms }> => {
    const quote: Quote = { provider: provider.address, tenant: tenant.address, manifestHash: id(`manifest-${nonce}`), rates: RATES, allocation: ALLOCATION, maxDuration: 86_400n, expiresAt: (await chain.now()) + 300n, nonce: nonce++ };
    const receipt = await send(label, as(tenant), 'openLease', quote, await signQuote(provider, domain, quote), DEPOSIT);
    const opened = receipt.logs.map((l) => decodeMarketplaceLog(typed, l)).find((e) => e?.name === 'LeaseOpened');
    if (opened?.name !== 'LeaseOpened') throw new Error('openLease emitted no LeaseOpened');
    return { leaseId: opened.args.leaseId, terms: opened.args.terms };
  };
  const checkpoint = (leaseId: bigint, recordCount: bigint, cumulativeAmount: bigint, periodEnd: bigint, usageRoot = id(`root-${recordCount}`)): Checkpoint => ({ leaseId, usageRoot, recordCount, cumulativeAmount, periodEnd, resultDigest: ZERO_BYTES32 });
  const signed = async (cp: Checkpoint) => ({ checkpoint: cp, signature: await signCheckpoint(provider, domain, cp) });
  /** The 8 records with index and running total; `usageAt` changes one's usage (repriced), `overcharge` one's amount. */
  const records = (leaseId: bigint, startedAt: bigint, options: { overcharge?: number; usageAt?: [number, Partial<MeteredUsage>] } = {}): UsageRecord[] => {
    const out: UsageRecord[] = [];
    for (const [i, base] of measured8(startedAt).entries()) {
      const usage = options.usageAt?.[0] === i ? { ...base, ...options.usageAt[1] } : base;
      const record = nextRecord(leaseId, out[i - 1], RATES, usage);
      const amount = i === options.overcharge ? record.amount + 1n : record.amount;
      out.push({ ...record, amount, total: (out[i - 1]?.total ?? 0n) + amount });
    }
    return out;
  };
  const proven = (list: UsageRecord[], i: number) => ({ record: list[i]!, proof: usageTree(list).getProof(i) });

  // Lease 1: redeem, then a unilateral claim, its finalisation, a withdrawal, close and settle.
  const first = await open('openLease');
  await chain.advance(600);
  const redeemCp = checkpoint(first.leaseId, 10n, 10n ** 17n, await chain.now());
  await send('redeem', as(provider), 'redeem', first.terms, redeemCp, await signCheckpoint(provider, domain, redeemCp), await signCheckpoint(tenant, domain, redeemCp));
  await chain.advance(600);
  const claimCp = checkpoint(first.leaseId, 20n, 2n * 10n ** 17n, await chain.now());
  await send('claim', as(provider), 'claim', first.terms, claimCp, await signCheckpoint(provider, domain, claimCp));
  await chain.advance(Number(WINDOW));
  await send('finalizeClaim', market, 'finalizeClaim', first.leaseId);
  await send('withdraw', as(provider), 'withdraw');
  await send('closeLease', as(tenant), 'closeLease', first.leaseId, first.terms);
  await chain.advance(Number(WINDOW));
  await send('settleLease', as(provider), 'settleLease', first.leaseId, first.terms);

  // Lease 2: a claim over 8 records, one overcharged, disputed; then each other dispute path
  // against a claim that gives it evidence, a late claim, and a withdrawal to an empty payout.
  const second = await open();
  const claimRecords = async (list: UsageRecord[], overrides: Partial<Checkpoint> = {}, label?: string): Promise<Checkpoint> => {
    const cp = { ...checkpointOf(second.leaseId, list), ...overrides };
    await send(label, as(provider), 'claim', second.terms, cp, await signCheckpoint(provider, domain, cp));
    return cp;
  };
  const honest = (): UsageRecord[] => records(second.leaseId, second.terms.startedAt);
  await chain.advance(600);
  await chain.aside(async () => {
    const overcharged = records(second.leaseId, second.terms.startedAt, { overcharge: 5 });
    await send(AMOUNT_DISPUTE, as(tenant), 'disputeRecord', second.terms, await claimRecords(overcharged), proven(overcharged, 5));
  });
  await chain.aside(async () => {
    // Record 3 counts 61 CPU-seconds in 60 s on a 1-core allocation, priced right.
    const list = records(second.leaseId, second.terms.startedAt, { usageAt: [3, { cpuMillis: 61_000n }] });
    await send('disputeRecord (over allocation)', as(tenant), 'disputeRecord', second.terms, await claimRecords(list), proven(list, 3));
  });
  await chain.aside(async () => {
    const list = honest();
    const cp = await claimRecords(list, { cumulativeAmount: list[7]!.total + 1n });
    await send('disputeRecord (last total)', as(tenant), 'disputeRecord', second.terms, cp, proven(list, 7));
  });
  await chain.aside(async () => {
    const overlapping = honest().map((r, i) => (i === 4 ? { ...r, t0: r.t0 - 30n, t1: r.t1 - 30n } : r));
    await send('disputeRecordPair', as(tenant), 'disputeRecordPair', second.terms, await claimRecords(overlapping), proven(overlapping, 3), proven(overlapping, 4));
  });
  await chain.aside(async () => {
    const list = honest();
    const remetered = list.map((r, i) => (i === 2 ? { ...r, rxBytes: r.rxBytes + 1n } : r));
    const [a, b] = [await signed(checkpointOf(second.leaseId, list.slice(0, 4))), await signed(checkpointOf(second.leaseId, remetered))];
    await send('disputeConflictingRecords', as(tenant), 'disputeConflictingRecords', second.terms, a, proven(list.slice(0, 4), 2), b, proven(remetered, 2));
  });
  const equivocation = async (leaseId: bigint) => [await signed(checkpoint(leaseId, 4n, 1n, 0n, id('a'))), await signed(checkpoint(leaseId, 4n, 1n, 0n, id('b')))];
  await chain.aside(async () => {
    await send('disputeEquivocation (by a third party)', as(finder), 'disputeEquivocation', second.terms, ...(await equivocation(second.leaseId)));
  });
  await chain.aside(async () => {
    // Late: after end + challengeWindow of a closed lease, within the late window.
    await send(undefined, as(tenant), 'closeLease', second.leaseId, second.terms);
    await chain.advance(Number(WINDOW) + 100);
    await claimRecords(honest(), {}, 'claim (late)');
  });
  await chain.aside(async () => {
    // The payout's first tokens: the transfer also creates its balance slot.
    const cp = checkpoint(second.leaseId, 1n, 10n ** 15n, await chain.now());
    await send(undefined, as(provider), 'redeem', second.terms, cp, await signCheckpoint(provider, domain, cp), await signCheckpoint(tenant, domain, cp));
    await send(undefined, as(payout), 'setPayout', provider.address, Wallet.createRandom().address);
    await send('withdraw (to an empty payout)', as(provider), 'withdraw');
  });

  // Lease 3: equivocation (two checkpoints of one prefix, different roots) by the tenant.
  const third = await open();
  await send('disputeEquivocation', as(tenant), 'disputeEquivocation', third.terms, ...(await equivocation(third.leaseId)));
  return gas;
}

function report(chainId: number, v2: Gas, v1: Gas): void {
  const rows = [...new Set([...Object.keys(v2), ...Object.keys(v1)])];
  const ratio = (name: string): number | undefined => (v2[name] !== undefined && v1[name] ? Number(v2[name]) / Number(v1[name]) : undefined);
  const width = Math.max(...rows.map((k) => k.length));
  const out = (cells: string[]): void => void process.stdout.write(`  ${cells[0]!.padEnd(width)}  ${cells.slice(1).map((c, i) => c.padStart([8, 8, 6, 10][i]!)).join('  ')}\n`);
  process.stdout.write(`Marketplace gas per call (anvil ${chainId}, solc optimizer 200 runs): MarketplaceV2, and the legacy v1 contract in the same run\n`);
  out(['call', 'v2', 'v1', 'v2/v1', 'budget']);
  for (const name of rows) {
    const used = v2[name];
    const budget = BUDGET[name] !== undefined && used !== undefined ? `${Number(used) <= BUDGET[name] ? '≤' : '>'} ${BUDGET[name]}` : '';
    out([name, used?.toString() ?? '', v1[name]?.toString() ?? '', ratio(name)?.toFixed(2) ?? '', budget]);
  }
  process.stdout.write(`  (${AMOUNT_DISPUTE}: v1 disputeUsage, v2 disputeRecord, proof of 3 hashes; every upheld v2 dispute slashes: up to 3 transfers)\n`);
  const figures = (gas: Gas): Record<string, number> => Object.fromEntries(Object.entries(gas).map(([k, v]) => [k, Number(v)]));
  const ratios = Object.fromEntries(rows.flatMap((k) => (ratio(k) === undefined ? [] : [[k, Number(ratio(k)!.toFixed(3))]])));
  process.stdout.write(`${JSON.stringify({ ...figures(v2), v1: figures(v1), ratio: ratios })}\n`);
}

export async function run(_args: string[]): Promise<void> {
  const chain = await startChain();
  try {
    const v1 = await measureLegacy(chain);
    const v2 = await measureV2(chain);
    report(chain.anvil.chainId, v2, v1);
  } finally {
    chain.rpc.destroy();
    await chain.anvil.stop();
  }
}
