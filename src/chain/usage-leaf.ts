import { AbiCoder, keccak256 } from 'ethers';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import type { Allocation, Checkpoint, LeaseTerms, Rates, UsageRecord } from '../vocabulary';
import { ZERO_BYTES32 } from './protocol';

/**
 * Usage records, the leaves a checkpoint's usageRoot commits to (docs/settlement-v2.md, "Usage
 * records"): the leaf encoding, the pricing and allocation rules, the next record of a sequence
 * and the checkpoint over a sequence, as contracts/MarketplaceV2.sol computes them.
 */

export type { UsageRecord } from '../vocabulary';

/** What a meter measured over [t0, t1], before pricing. */
export type MeteredUsage = Pick<UsageRecord, 't0' | 't1' | 'cpuMillis' | 'memoryByteSeconds' | 'gpuMillis' | 'rxBytes' | 'txBytes'>;

export interface ProvenRecord {
  record: UsageRecord;
  proof: string[];
}

/** Field order and Solidity types of a usage-record leaf (StandardMerkleTree leaf encoding). */
export const USAGE_RECORD_FIELDS = [
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
] as const satisfies readonly (readonly [keyof UsageRecord, string])[];

export const USAGE_LEAF_ENCODING: string[] = USAGE_RECORD_FIELDS.map(([, type]) => type);

export function usageLeafValues(record: UsageRecord): bigint[] {
  return USAGE_RECORD_FIELDS.map(([name]) => record[name]);
}

/** The tree a checkpoint's usageRoot is the root of; its leaves are sorted, so the root depends only on the records. */
export function usageTree(records: readonly UsageRecord[]): StandardMerkleTree<bigint[]> {
  return StandardMerkleTree.of(records.map(usageLeafValues), USAGE_LEAF_ENCODING);
}

const abi = AbiCoder.defaultAbiCoder();

/** keccak256(bytes.concat(keccak256(abi.encode(record)))), as the contract's usageLeaf. */
export function usageLeaf(record: UsageRecord): string {
  return keccak256(keccak256(abi.encode(USAGE_LEAF_ENCODING, usageLeafValues(record))));
}

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
export function claimCap(terms: LeaseTerms, periodEnd: bigint): bigint {
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

/** The next record of a lease: index after the last one, priced, with its running total. */
export function nextRecord(leaseId: bigint, previous: UsageRecord | undefined, rates: Rates, usage: MeteredUsage): UsageRecord {
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
export function checkpointOf(leaseId: bigint, records: readonly UsageRecord[], resultDigest: string = ZERO_BYTES32): Checkpoint {
  const last = records[records.length - 1];
  if (!last) throw new RangeError('a checkpoint needs at least one usage record');
  return {
    leaseId,
    usageRoot: usageTree(records).root,
    recordCount: BigInt(records.length),
    cumulativeAmount: last.total,
    periodEnd: last.t1,
    resultDigest,
  };
}

