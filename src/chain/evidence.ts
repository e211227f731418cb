import type { Checkpoint, LeaseTerms, UsageRecord } from '../vocabulary';
import { ceilingRate, recordAmount, usageLeaf, usageLimits } from './usage-leaf';

/**
 * The contract's evidence rules in TypeScript (MarketplaceV2.recordFault, pairFault,
 * checkpointsConflict), and the tenant's search for the evidence a dispute needs (findDispute):
 * the tenant finds exactly what the contract upholds.
 */

/** The contract's Fault enum, in order. */
export const FAULTS = [
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
export type Fault = (typeof FAULTS)[number];

/** Whether `amount` is at most what the allocation allows over `seconds`. */
function fitsCeiling(terms: LeaseTerms, amount: bigint, seconds: bigint): boolean {
  return amount <= ceilingRate(terms.rates, terms.allocation) * seconds;
}

/** What is wrong with one record of `cp` on its own (MarketplaceV2.recordFault, same order), or null. */
export function recordFault(terms: LeaseTerms, cp: Checkpoint, r: UsageRecord): Fault | null {
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
export function pairFault(terms: LeaseTerms, a: UsageRecord, b: UsageRecord): Fault | null {
  if (a.index === b.index) return usageLeaf(a) !== usageLeaf(b) ? 'DuplicateIndex' : null;
  const [first, next] = a.index < b.index ? [a, b] : [b, a];
  const between = next.index - first.index - 1n;
  if (next.t0 < first.t1 + between || (between === 0n && next.t0 !== first.t1)) return 'NotContiguous';
  const charged = next.total - first.total - next.amount;
  if (charged < 0n || (between === 0n ? charged !== 0n : !fitsCeiling(terms, charged, next.t0 - first.t1))) return 'TotalMismatch';
  return null;
}

/** Whether two signed checkpoints of one lease cannot both be true (MarketplaceV2.checkpointsConflict). */
export function checkpointsConflict(terms: LeaseTerms, a: Checkpoint, b: Checkpoint): boolean {
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
  | { kind: 'record'; fault: Fault; record: UsageRecord }
  | { kind: 'pair'; fault: Fault; a: UsageRecord; b: UsageRecord }
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
export function findDispute(terms: LeaseTerms, cp: Checkpoint, served: readonly UsageRecord[]): DisputeEvidence | null {
  for (const record of served) {
    const fault = recordFault(terms, cp, record);
    if (fault) return { kind: 'record', fault, record };
  }
  const byIndex = new Map<bigint, UsageRecord>();
  for (const record of served) {
    const seen = byIndex.get(record.index);
    if (seen && usageLeaf(seen) !== usageLeaf(record)) return { kind: 'pair', fault: 'DuplicateIndex', a: seen, b: record };
    byIndex.set(record.index, record);
  }
  const ordered = [...byIndex.values()].sort((a, b) => (a.index < b.index ? -1 : 1));
  for (let i = 1; i < ordered.length; i += 1) {
    const a = ordered[i - 1] as UsageRecord;
    const b = ordered[i] as UsageRecord;
    const fault = pairFault(terms, a, b);
    if (fault) return { kind: 'pair', fault, a, b };
  }
  for (let i = 0n; i < cp.recordCount; i += 1n) {
    if (!byIndex.has(i)) return { kind: 'missing', index: i };
  }
  return null;
}

