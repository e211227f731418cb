import { AbiCoder, ContractFactory, getAddress, keccak256, TypedDataEncoder, type Signer, type TypedDataDomain } from 'ethers';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import type { Rates } from '../vocabulary';
import { marketplaceV2Abi, marketplaceV2Bytecode } from './artifacts/marketplace-v2';
import { ZERO_BYTES32 } from './protocol';

/**
 * The off-chain half of contracts/MarketplaceV2.sol (settlement v2, docs/settlement-v2.md): the
 * EIP-712 types, the usage-record leaf with its index and running total, the pricing and
 * allocation rules, the amount rule of a checkpoint, and the evidence rules the contract's
 * disputes apply, as pure functions, so the provider builds exactly what the contract checks and
 * the tenant finds exactly the evidence the contract accepts. Amounts are token base units
 * (bigint); times are unix seconds.
 */

export const EIP712_NAME_V2 = 'ProviderMarketplace';
export const EIP712_VERSION_V2 = '2';

export function marketplaceV2Domain(chainId: number | bigint, marketplaceAddress: string): TypedDataDomain {
  return { name: EIP712_NAME_V2, version: EIP712_VERSION_V2, chainId, verifyingContract: marketplaceAddress };
}

export type { Rates } from '../vocabulary';

/** What a lease may physically use, committed by the quote; records above it are disputable. */
export interface Allocation {
  /** Thousandths of a core: a record may count at most cpuMillicores × seconds CPU-ms. */
  cpuMillicores: bigint;
  /** A record may count at most gpuCount × seconds × 1000 GPU-ms. */
  gpuCount: bigint;
  /** A record may count at most egressBytesPerSecond × seconds bytes sent. */
  egressBytesPerSecond: bigint;
}

export interface QuoteV2 {
  provider: string;
  tenant: string;
  manifestHash: string;
  rates: Rates;
  allocation: Allocation;
  maxDuration: bigint;
  expiresAt: bigint;
  /** Below 2^96: the lease id is (provider << 96) | nonce. */
  nonce: bigint;
}

/** What the contract fixed at openLease (in LeaseOpened); every later call passes it back. */
export interface LeaseTerms {
  provider: string;
  tenant: string;
  startedAt: bigint;
  deposit: bigint;
  rates: Rates;
  allocation: Allocation;
}

export interface CheckpointV2 {
  leaseId: bigint;
  usageRoot: string;
  /** The checkpoint covers records 0 .. recordCount - 1. */
  recordCount: bigint;
  /** The last covered record's running total, never cut to a cap or the escrow. */
  cumulativeAmount: bigint;
  /** The last covered record's t1. */
  periodEnd: bigint;
  /** Zero until the lease's final checkpoint. */
  resultDigest: string;
}

export interface UsageRecordV2 {
  leaseId: bigint;
  /** Position in the lease's record sequence, from 0. */
  index: bigint;
  t0: bigint;
  t1: bigint;
  cpuMillis: bigint;
  memoryByteSeconds: bigint;
  gpuMillis: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  amount: bigint;
  /** Sum of the amounts of records 0 .. index. */
  total: bigint;
}

/** What a meter measured over [t0, t1], before pricing. */
export type MeteredUsage = Pick<UsageRecordV2, 't0' | 't1' | 'cpuMillis' | 'memoryByteSeconds' | 'gpuMillis' | 'rxBytes' | 'txBytes'>;

export interface SignedCheckpointV2 {
  checkpoint: CheckpointV2;
  signature: string;
}

export interface ProvenRecordV2 {
  record: UsageRecordV2;
  proof: string[];
}

export const LATE_PENALTY_BPS = 1_000n;
export const FINDER_REWARD_BPS = 1_000n;
export const COMPENSATION_BPS = 5_000n;
const BPS = 10_000n;

const RATES_TYPE = [
  { name: 'perSecond', type: 'uint256' },
  { name: 'perCpuSecond', type: 'uint256' },
  { name: 'perGpuSecond', type: 'uint256' },
  { name: 'perGiBEgress', type: 'uint256' },
];
const ALLOCATION_TYPE = [
  { name: 'cpuMillicores', type: 'uint64' },
  { name: 'gpuCount', type: 'uint64' },
  { name: 'egressBytesPerSecond', type: 'uint64' },
];

export const QUOTE_V2_TYPES = {
  Quote: [
    { name: 'provider', type: 'address' },
    { name: 'tenant', type: 'address' },
    { name: 'manifestHash', type: 'bytes32' },
    { name: 'rates', type: 'Rates' },
    { name: 'allocation', type: 'Allocation' },
    { name: 'maxDuration', type: 'uint64' },
    { name: 'expiresAt', type: 'uint64' },
    { name: 'nonce', type: 'uint96' },
  ],
  Rates: RATES_TYPE,
  Allocation: ALLOCATION_TYPE,
};

export const CHECKPOINT_V2_TYPES = {
  Checkpoint: [
    { name: 'leaseId', type: 'uint256' },
    { name: 'usageRoot', type: 'bytes32' },
    { name: 'recordCount', type: 'uint64' },
    { name: 'cumulativeAmount', type: 'uint256' },
    { name: 'periodEnd', type: 'uint64' },
    { name: 'resultDigest', type: 'bytes32' },
  ],
};

/** Field order and Solidity types of a usage-record leaf (StandardMerkleTree leaf encoding). */
export const USAGE_RECORD_V2_FIELDS = [
  ['leaseId', 'uint256'],
  ['index', 'uint64'],
  ['t0', 'uint64'],
  ['t1', 'uint64'],
  ['cpuMillis', 'uint64'],
  ['memoryByteSeconds', 'uint256'],
  ['gpuMillis', 'uint64'],
  ['rxBytes', 'uint64'],
  ['txBytes', 'uint64'],
  ['amount', 'uint256'],
  ['total', 'uint256'],
] as const satisfies readonly (readonly [keyof UsageRecordV2, string])[];

export const USAGE_LEAF_V2_ENCODING: string[] = USAGE_RECORD_V2_FIELDS.map(([, type]) => type);

export function usageLeafV2Values(record: UsageRecordV2): bigint[] {
  return USAGE_RECORD_V2_FIELDS.map(([name]) => record[name]);
}

/** The tree a checkpoint's usageRoot is the root of; its leaves are sorted, so the root depends only on the records. */
export function usageTreeV2(records: readonly UsageRecordV2[]): StandardMerkleTree<bigint[]> {
  return StandardMerkleTree.of(records.map(usageLeafV2Values), USAGE_LEAF_V2_ENCODING);
}

const abi = AbiCoder.defaultAbiCoder();

/** keccak256(bytes.concat(keccak256(abi.encode(record)))), as the contract's usageLeaf. */
export function usageLeafV2(record: UsageRecordV2): string {
  return keccak256(keccak256(abi.encode(USAGE_LEAF_V2_ENCODING, usageLeafV2Values(record))));
}

const TERMS_TUPLE =
  'tuple(address provider,address tenant,uint64 startedAt,uint96 deposit,' +
  'tuple(uint256 perSecond,uint256 perCpuSecond,uint256 perGpuSecond,uint256 perGiBEgress) rates,' +
  'tuple(uint64 cpuMillicores,uint64 gpuCount,uint64 egressBytesPerSecond) allocation)';

/** keccak256(abi.encode(terms)): the hash a lease keeps. */
export function hashTerms(terms: LeaseTerms): string {
  return keccak256(abi.encode([TERMS_TUPLE], [terms]));
}

export function leaseIdOf(provider: string, nonce: bigint): bigint {
  if (nonce < 0n || nonce >= 2n ** 96n) throw new RangeError('a quote nonce must fit in 96 bits');
  return (BigInt(getAddress(provider)) << 96n) | nonce;
}

export function providerOfLease(leaseId: bigint): string {
  return getAddress(`0x${(leaseId >> 96n).toString(16).padStart(40, '0')}`);
}

// ---------------------------------------------------------------- pricing and allocation

const GIB_SHIFT = 30n;

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

/** What a record must charge under `rates`; each term rounds down, as the contract does. */
export function recordAmount(rates: Rates, usage: MeteredUsage): bigint {
  if (usage.t1 < usage.t0) throw new RangeError('usage ends before it starts');
  return (
    rates.perSecond * (usage.t1 - usage.t0) +
    (rates.perCpuSecond * usage.cpuMillis) / 1000n +
    (rates.perGpuSecond * usage.gpuMillis) / 1000n +
    ((rates.perGiBEgress * usage.txBytes) >> GIB_SHIFT)
  );
}

/** The most one second of a lease can cost under its allocation; no valid record costs more per second. */
export function ceilingRate(rates: Rates, allocation: Allocation): bigint {
  return (
    rates.perSecond +
    ceilDiv(rates.perCpuSecond * allocation.cpuMillicores, 1000n) +
    rates.perGpuSecond * allocation.gpuCount +
    ceilDiv(rates.perGiBEgress * allocation.egressBytesPerSecond, 1n << GIB_SHIFT)
  );
}

/** The most a unilateral claim may ask at `periodEnd`; valid records never reach it. */
export function claimCapV2(terms: LeaseTerms, periodEnd: bigint): bigint {
  return periodEnd <= terms.startedAt ? 0n : ceilingRate(terms.rates, terms.allocation) * (periodEnd - terms.startedAt);
}

export function usageLimits(allocation: Allocation, seconds: bigint): { cpuMillis: bigint; gpuMillis: bigint; txBytes: bigint } {
  return {
    cpuMillis: allocation.cpuMillicores * seconds,
    gpuMillis: allocation.gpuCount * seconds * 1000n,
    txBytes: allocation.egressBytesPerSecond * seconds,
  };
}

/**
 * What an honest meter bills: its measurement cut to the allocation over the interval. The
 * kernel's accounting can overshoot a limit by a CFS period and timestamps are whole seconds, so
 * a raw measurement may exceed the bound; billing it would make the record disputable.
 */
export function clampToAllocation(allocation: Allocation, usage: MeteredUsage): MeteredUsage {
  const limits = usageLimits(allocation, usage.t1 > usage.t0 ? usage.t1 - usage.t0 : 0n);
  const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
  return {
    ...usage,
    cpuMillis: min(usage.cpuMillis, limits.cpuMillis),
    gpuMillis: min(usage.gpuMillis, limits.gpuMillis),
    txBytes: min(usage.txBytes, limits.txBytes),
  };
}

// ---------------------------------------------------------------- the provider's side

/** The next record of a lease: index after the last one, priced, with its running total. */
export function nextRecord(leaseId: bigint, previous: UsageRecordV2 | undefined, rates: Rates, usage: MeteredUsage): UsageRecordV2 {
  const amount = recordAmount(rates, usage);
  return {
    leaseId,
    index: previous ? previous.index + 1n : 0n,
    ...usage,
    amount,
    total: (previous?.total ?? 0n) + amount,
  };
}

/**
 * The amount rule: a checkpoint over records 0 .. n-1 carries their exact total and the last
 * record's end, whatever the escrow; the contract cuts the payout to the deposit (see payableTo).
 * Provider and tenant sign exactly this, so a lease that uses up its escrow is still countersigned.
 */
export function checkpointOf(leaseId: bigint, records: readonly UsageRecordV2[], resultDigest: string = ZERO_BYTES32): CheckpointV2 {
  const last = records[records.length - 1];
  if (!last) throw new RangeError('a checkpoint needs at least one usage record');
  return {
    leaseId,
    usageRoot: usageTreeV2(records).root,
    recordCount: BigInt(records.length),
    cumulativeAmount: last.total,
    periodEnd: last.t1,
    resultDigest,
  };
}

/** What `paid` becomes when a checkpoint of `cumulativeAmount` is redeemed or its claim is final (on time). */
export function payableTo(cumulativeAmount: bigint, deposit: bigint): bigint {
  return cumulativeAmount < deposit ? cumulativeAmount : deposit;
}

/** A late claim (after end + challengeWindow) keeps 90% of what it adds above `floor` (paid or pending). */
export function latePayableTo(floor: bigint, target: bigint): bigint {
  return target <= floor ? target : floor + ((target - floor) * (BPS - LATE_PENALTY_BPS)) / BPS;
}

// ---------------------------------------------------------------- evidence rules (the contract's, in TypeScript)

/** The contract's Fault enum, in order. */
export const FAULTS_V2 = [
  'WrongLease',
  'IndexOutOfRange',
  'BadInterval',
  'OverAllocation',
  'AmountMismatch',
  'TotalMismatch',
  'PeriodMismatch',
  'NotContiguous',
  'DuplicateIndex',
  'Equivocation',
] as const;
export type FaultV2 = (typeof FAULTS_V2)[number];

/** Whether `amount` is at most what the allocation allows over `seconds`. */
function fitsCeiling(terms: LeaseTerms, amount: bigint, seconds: bigint): boolean {
  return amount <= ceilingRate(terms.rates, terms.allocation) * seconds;
}

/** What is wrong with one record of `cp` on its own (MarketplaceV2.recordFault, same order), or null. */
export function recordFault(terms: LeaseTerms, cp: CheckpointV2, r: UsageRecordV2): FaultV2 | null {
  if (r.leaseId !== cp.leaseId) return 'WrongLease';
  if (r.index >= cp.recordCount) return 'IndexOutOfRange';
  const after = cp.recordCount - 1n - r.index;
  if (r.t1 <= r.t0 || r.t0 < terms.startedAt + r.index || r.t1 + after > cp.periodEnd) return 'BadInterval';
  const limits = usageLimits(terms.allocation, r.t1 - r.t0);
  if (r.cpuMillis > limits.cpuMillis || r.gpuMillis > limits.gpuMillis || r.txBytes > limits.txBytes) return 'OverAllocation';
  if (r.amount !== recordAmount(terms.rates, r)) return 'AmountMismatch';
  if (r.index === 0n) {
    if (r.total !== r.amount) return 'TotalMismatch';
  } else if (r.total < r.amount || !fitsCeiling(terms, r.total - r.amount, r.t0 - terms.startedAt)) {
    return 'TotalMismatch';
  }
  if (after === 0n) {
    if (r.total !== cp.cumulativeAmount) return 'TotalMismatch';
    if (r.t1 !== cp.periodEnd) return 'PeriodMismatch';
  } else if (cp.cumulativeAmount < r.total || !fitsCeiling(terms, cp.cumulativeAmount - r.total, cp.periodEnd - r.t1)) {
    return 'TotalMismatch';
  }
  return null;
}

/** What is wrong with two records of one root (MarketplaceV2.pairFault), or null. */
export function pairFault(terms: LeaseTerms, a: UsageRecordV2, b: UsageRecordV2): FaultV2 | null {
  if (a.index === b.index) return usageLeafV2(a) !== usageLeafV2(b) ? 'DuplicateIndex' : null;
  const [first, next] = a.index < b.index ? [a, b] : [b, a];
  const between = next.index - first.index - 1n;
  if (next.t0 < first.t1 + between || (between === 0n && next.t0 !== first.t1)) return 'NotContiguous';
  const charged = next.total - first.total - next.amount;
  if (charged < 0n || (between === 0n ? charged !== 0n : !fitsCeiling(terms, charged, next.t0 - first.t1))) return 'TotalMismatch';
  return null;
}

/** Whether two signed checkpoints of one lease cannot both be true (MarketplaceV2.checkpointsConflict). */
export function checkpointsConflict(terms: LeaseTerms, a: CheckpointV2, b: CheckpointV2): boolean {
  const [shorter, longer] = a.recordCount <= b.recordCount ? [a, b] : [b, a];
  if (shorter.recordCount === longer.recordCount) {
    return shorter.usageRoot !== longer.usageRoot || shorter.cumulativeAmount !== longer.cumulativeAmount || shorter.periodEnd !== longer.periodEnd;
  }
  if (longer.periodEnd <= shorter.periodEnd) return true;
  if (longer.cumulativeAmount < shorter.cumulativeAmount) return true;
  return longer.cumulativeAmount - shorter.cumulativeAmount > ceilingRate(terms.rates, terms.allocation) * (longer.periodEnd - shorter.periodEnd);
}

/** Evidence against a checkpoint, as the contract's disputes take it (proofs are the caller's: each record's against cp's root). */
export type DisputeEvidence =
  | { kind: 'record'; fault: FaultV2; record: UsageRecordV2 }
  | { kind: 'pair'; fault: FaultV2; a: UsageRecordV2; b: UsageRecordV2 }
  /**
   * Every record served is consistent, but index `index` was not served: there is no on-chain
   * evidence, and the claim is bounded by the served records' total plus ceilingRate times the
   * time they do not cover. A tenant does not countersign such a checkpoint.
   */
  | { kind: 'missing'; index: bigint };

/**
 * The tenant's check of a checkpoint against the records it was served (each already proven to
 * be in cp's root): the first evidence the contract would accept, or 'missing', or null when
 * records 0 .. recordCount-1 were all served and are each valid and add up, in which case
 * cp.cumulativeAmount is their total. Order: each record alone, then two records with one index,
 * then each two records next to each other in index order, then a missing index.
 */
export function findDispute(terms: LeaseTerms, cp: CheckpointV2, served: readonly UsageRecordV2[]): DisputeEvidence | null {
  for (const record of served) {
    const fault = recordFault(terms, cp, record);
    if (fault) return { kind: 'record', fault, record };
  }
  const byIndex = new Map<bigint, UsageRecordV2>();
  for (const record of served) {
    const seen = byIndex.get(record.index);
    if (seen && usageLeafV2(seen) !== usageLeafV2(record)) return { kind: 'pair', fault: 'DuplicateIndex', a: seen, b: record };
    byIndex.set(record.index, record);
  }
  const ordered = [...byIndex.values()].sort((a, b) => (a.index < b.index ? -1 : 1));
  for (let i = 1; i < ordered.length; i += 1) {
    const a = ordered[i - 1] as UsageRecordV2;
    const b = ordered[i] as UsageRecordV2;
    const fault = pairFault(terms, a, b);
    if (fault) return { kind: 'pair', fault, a, b };
  }
  for (let i = 0n; i < cp.recordCount; i += 1n) {
    if (!byIndex.has(i)) return { kind: 'missing', index: i };
  }
  return null;
}

// ---------------------------------------------------------------- EIP-712

export function hashQuoteV2(domain: TypedDataDomain, quote: QuoteV2): string {
  return TypedDataEncoder.hash(domain, QUOTE_V2_TYPES, quote);
}

export function hashCheckpointV2(domain: TypedDataDomain, checkpoint: CheckpointV2): string {
  return TypedDataEncoder.hash(domain, CHECKPOINT_V2_TYPES, checkpoint);
}

export function signQuoteV2(signer: Signer, domain: TypedDataDomain, quote: QuoteV2): Promise<string> {
  return signer.signTypedData(domain, QUOTE_V2_TYPES, quote);
}

/** The provider signs a checkpoint; the tenant countersigns the very same typed data for `redeem`. */
export function signCheckpointV2(signer: Signer, domain: TypedDataDomain, checkpoint: CheckpointV2): Promise<string> {
  return signer.signTypedData(domain, CHECKPOINT_V2_TYPES, checkpoint);
}

// ---------------------------------------------------------------- deployment

export interface MarketplaceV2Params {
  tokenAddress: string;
  /** Receives what a slash does not pay out; a burn address (0x…dEaD) burns it. */
  treasury: string;
  minBond: bigint;
  /** Seconds a unilateral claim waits for disputes; never 0. */
  challengeWindowSeconds: bigint;
  /** Seconds after end + challengeWindow in which only the provider may settle, so a late claim still finds the escrow. */
  lateWindowSeconds: bigint;
  unbondingDelaySeconds: bigint;
}

type FactoryAbi = ConstructorParameters<typeof ContractFactory>[0];

export async function deployMarketplaceV2(signer: Signer, params: MarketplaceV2Params): Promise<string> {
  const factory = new ContractFactory(marketplaceV2Abi as unknown as FactoryAbi, marketplaceV2Bytecode, signer);
  const contract = await factory.deploy(
    params.tokenAddress,
    params.treasury,
    params.minBond,
    params.challengeWindowSeconds,
    params.lateWindowSeconds,
    params.unbondingDelaySeconds,
  );
  await contract.waitForDeployment();
  return contract.getAddress();
}
