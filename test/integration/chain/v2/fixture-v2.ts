import { Contract, Interface, Wallet, id, type InterfaceAbi, type TransactionReceipt } from 'ethers';
import { devPrivateKey } from '../../../../src/devnet/dev-accounts';
import { marketplaceV2Abi } from '../../../../src/chain/artifacts/marketplace-v2';
import { legacyMarketplaceAbi } from '../../../../test/fixtures/contracts/legacy-marketplace';
import {
  checkpointOf,
  deployMarketplace,
  marketplaceDomain,
  nextRecord,
  signCheckpoint,
  signQuote,
  usageTree,
  type Allocation,
  type Checkpoint,
  type LeaseTerms,
  type MeteredUsage,
  type ProvenRecord,
  type Quote,
  type SignedCheckpoint,
  type UsageRecord,
} from '../../../../src/chain';
import { CHALLENGE_WINDOW, MIN_BOND, RATES, UNBONDING_DELAY, latestTimestamp, send, startFixture, stopFixture, type Fixture } from '../fixture';

export { send };

/**
 * One anvil with both contracts: today's Marketplace (fx.market, as ../fixture.ts deploys it) and
 * MarketplaceV2 beside it, same token, same actors, the provider registered on V2 with a payout
 * address of its own.
 */

export const LATE_WINDOW = 2n * 86_400n;

export const ALLOCATION: Allocation = { cpuMillicores: 2_000n, gpuCount: 1n, egressBytesPerSecond: 10_000_000n };

export interface DualFixture extends Fixture {
  v2: Contract;
  v2Domain: ReturnType<typeof marketplaceDomain>;
  /** The provider's cold payout address on V2. */
  payout: Wallet;
  treasury: string;
}

export async function startDualFixture(): Promise<DualFixture> {
  const fx = await startFixture();
  const payout = new Wallet(devPrivateKey(5), fx.rpc);
  const treasury = new Wallet(devPrivateKey(6)).address;
  const address = await deployMarketplace(fx.deployer, {
    tokenAddress: await fx.token.getAddress(),
    treasury,
    minBond: MIN_BOND,
    challengeWindowSeconds: CHALLENGE_WINDOW,
    lateWindowSeconds: LATE_WINDOW,
    unbondingDelaySeconds: UNBONDING_DELAY,
  });
  const v2 = new Contract(address, marketplaceV2Abi as unknown as InterfaceAbi, fx.deployer);
  for (const who of [fx.provider, fx.tenant, fx.other, fx.otherProvider]) {
    await send(fx.token.connect(who) as Contract, 'approve', address, 2n ** 255n);
  }
  return { ...fx, v2, v2Domain: marketplaceDomain(fx.chainId, address), payout, treasury };
}

export const stopDualFixture = stopFixture;

export function v2As(fx: DualFixture, who: Wallet): Contract {
  return fx.v2.connect(who) as Contract;
}

export async function registerV2(fx: DualFixture, who: Wallet = fx.provider, payout: string = fx.payout.address): Promise<void> {
  await send(v2As(fx, who), 'registerProvider', 'https://provider.example', '{"region":"test"}', MIN_BOND, payout);
}

const errorInterfaces = [marketplaceV2Abi, legacyMarketplaceAbi].map((abi) => new Interface(abi as unknown as InterfaceAbi));

/** The custom error a call reverted with, decoded with either contract's ABI. */
export async function revertOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    const e = err as { revert?: { name?: string }; data?: string; info?: { error?: { data?: string } } };
    if (e.revert?.name) return e.revert.name;
    const data = e.data ?? e.info?.error?.data;
    for (const iface of errorInterfaces) {
      const parsed = data ? iface.parseError(data) : null;
      if (parsed) return parsed.name;
    }
    throw err;
  }
  throw new Error('expected a revert, the call succeeded');
}

export function v2Events(fx: DualFixture, receipt: TransactionReceipt): string[] {
  return receipt.logs.map((log) => fx.v2.interface.parseLog(log)?.name).filter((n): n is string => !!n);
}

export async function balanceOf(fx: Fixture, address: string): Promise<bigint> {
  return (await fx.token.getFunction('balanceOf')(address)) as bigint;
}

let nonceCounter = 1n;

export async function aQuoteV2(fx: DualFixture, overrides: Partial<Quote> = {}): Promise<Quote> {
  return {
    provider: fx.provider.address,
    tenant: fx.tenant.address,
    manifestHash: id('manifest'),
    rates: RATES,
    allocation: ALLOCATION,
    maxDuration: 86_400n,
    expiresAt: (await latestTimestamp(fx)) + 300n,
    nonce: nonceCounter++,
    ...overrides,
  };
}

export interface OpenedV2 {
  leaseId: bigint;
  terms: LeaseTerms;
  receipt: TransactionReceipt;
}

interface TermsResult {
  provider: string;
  tenant: string;
  startedAt: bigint;
  deposit: bigint;
  rates: { perSecond: bigint; perCpuSecond: bigint; perGpuSecond: bigint; perGiBEgress: bigint };
  allocation: { cpuMillicores: bigint; gpuCount: bigint; egressBytesPerSecond: bigint };
}

/** The terms LeaseOpened announced, as plain values. */
export function termsFromReceipt(fx: DualFixture, receipt: TransactionReceipt): { leaseId: bigint; terms: LeaseTerms } {
  const opened = receipt.logs.map((log) => fx.v2.interface.parseLog(log)).find((e) => e?.name === 'LeaseOpened');
  if (!opened) throw new Error('no LeaseOpened');
  const t = opened.args.getValue('terms') as TermsResult;
  return {
    leaseId: opened.args.getValue('leaseId') as bigint,
    terms: {
      provider: t.provider,
      tenant: t.tenant,
      startedAt: t.startedAt,
      deposit: t.deposit,
      rates: { perSecond: t.rates.perSecond, perCpuSecond: t.rates.perCpuSecond, perGpuSecond: t.rates.perGpuSecond, perGiBEgress: t.rates.perGiBEgress },
      allocation: { cpuMillicores: t.allocation.cpuMillicores, gpuCount: t.allocation.gpuCount, egressBytesPerSecond: t.allocation.egressBytesPerSecond },
    },
  };
}

/** Opens a V2 lease from a fresh quote signed by `signer`, paid by `tenant`. */
export async function openV2(
  fx: DualFixture,
  options: { quote?: Partial<Quote>; deposit?: bigint; tenant?: Wallet; signer?: Wallet } = {},
): Promise<OpenedV2> {
  const tenant = options.tenant ?? fx.tenant;
  const quote = await aQuoteV2(fx, { tenant: tenant.address, ...options.quote });
  const sig = await signQuote(options.signer ?? fx.provider, fx.v2Domain, quote);
  const receipt = await send(v2As(fx, tenant), 'openLease', quote, sig, options.deposit ?? 10n ** 15n);
  return { ...termsFromReceipt(fx, receipt), receipt };
}

/**
 * Usage of `seconds` from t0 the way an honest meter bills it under ALLOCATION-sized terms:
 * 3/4 of the CPU, every GPU, a little egress (all within the allocation).
 */
export function honestUsage(terms: LeaseTerms, t0: bigint, seconds: bigint, load = 750n): MeteredUsage {
  return {
    t0,
    t1: t0 + seconds,
    cpuMillis: (terms.allocation.cpuMillicores * seconds * load) / 1000n,
    memoryByteSeconds: seconds * 2n ** 30n,
    gpuMillis: terms.allocation.gpuCount * seconds * 1000n,
    rxBytes: 1_000n * seconds,
    txBytes: (terms.allocation.egressBytesPerSecond * seconds) / 10n,
  };
}

/** `count` contiguous honest records of `seconds` each from the lease's start. */
export function honestRecords(leaseId: bigint, terms: LeaseTerms, count: number, seconds = 60n): UsageRecord[] {
  const records: UsageRecord[] = [];
  for (let i = 0; i < count; i += 1) {
    records.push(nextRecord(leaseId, records[i - 1], terms.rates, honestUsage(terms, terms.startedAt + BigInt(i) * seconds, seconds)));
  }
  return records;
}

/** Records re-chained after a change: indexes and running totals follow the array, amounts are kept. */
export function rechain(records: readonly UsageRecord[]): UsageRecord[] {
  let total = 0n;
  return records.map((r, i) => {
    total += r.amount;
    return { ...r, index: BigInt(i), total };
  });
}

export function proven(records: readonly UsageRecord[], index: number): ProvenRecord {
  const record = records[index];
  if (!record) throw new RangeError(`no record ${index}`);
  return { record, proof: usageTree(records).getProof(index) };
}

/** A checkpoint over `records` (the amount rule), optionally altered, signed by the provider. */
export async function signedCheckpoint(
  fx: DualFixture,
  leaseId: bigint,
  records: readonly UsageRecord[],
  overrides: Partial<Checkpoint> = {},
  signer: Wallet = fx.provider,
): Promise<SignedCheckpoint> {
  const checkpoint = { ...checkpointOf(leaseId, records), ...overrides };
  return { checkpoint, signature: await signCheckpoint(signer, fx.v2Domain, checkpoint) };
}

/** Waits until the records' period has passed, then the provider claims a checkpoint over them. */
export async function claimV2(
  fx: DualFixture,
  opened: OpenedV2,
  records: readonly UsageRecord[],
  overrides: Partial<Checkpoint> = {},
): Promise<{ signed: SignedCheckpoint; receipt: TransactionReceipt }> {
  const signed = await signedCheckpoint(fx, opened.leaseId, records, overrides);
  const now = await latestTimestamp(fx);
  if (signed.checkpoint.periodEnd > now) await fx.rpc.send('evm_increaseTime', [Number(signed.checkpoint.periodEnd - now)]);
  const receipt = await send(v2As(fx, fx.provider), 'claim', opened.terms, signed.checkpoint, signed.signature);
  return { signed, receipt };
}

/** Runs `body` on a copy of the chain and returns to where it was. */
export async function inSnapshot<T>(fx: Fixture, body: () => Promise<T>): Promise<T> {
  const snapshot = (await fx.rpc.send('evm_snapshot', [])) as string;
  try {
    return await body();
  } finally {
    await fx.rpc.send('evm_revert', [snapshot]);
  }
}
