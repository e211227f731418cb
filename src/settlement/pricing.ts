import type { ProviderConfig } from '../config';
import type { Rates } from '../chain';

/**
 * The rate card (config `pricing`) turned into one lease's on-chain rates. The contract prices a
 * usage record linearly (see contracts/Marketplace.sol): per second of lease, per CPU-second used,
 * per GPU-second allocated, per GiB sent. Memory is reserved for the whole lease, so its price
 * is folded into `perSecond`:
 *
 *   perSecond    = perLeaseSecond + ceil(memoryBytes × perGiBMemorySecond / 2^30)
 *   perCpuSecond = perCpuSecond
 *   perGpuSecond = perGpuSecondByModel[model] ?? perGpuSecond      (the model of the allocated GPUs)
 *   perGiBEgress = perGiBEgress
 *
 * maxRatePerSecond is what the lease can at most cost per second, the cap of a unilateral claim:
 *
 *   perSecond + ceil(perCpuSecond × cpuMillis × 5/4 / 1000) + perGpuSecond × gpus
 *             + ceil(perGiBEgress × EGRESS_ALLOWANCE / 2^30)
 *
 * The 5/4 on CPU is headroom for the kernel's accounting (CFS periods straddle our sample
 * boundaries); egress has no hard limit, so the cap assumes at most 1 Gbit/s on average. What goes
 * beyond the cap is never claimed (the checkpoint's cumulativeAmount is cut to it).
 *
 * `minimumPerLease` cannot be a record amount (each record must follow the formula, or it is
 * disputable), so it is the least deposit a lease must escrow: a lease opened with less is not run.
 */

export type RateCard = ProviderConfig['pricing'];

/** Average egress a lease is assumed to sustain at most, for the cap: 1 Gbit/s. */
export const EGRESS_ALLOWANCE_BYTES_PER_SECOND = 125_000_000n;

const GIB = 2n ** 30n;

function ceilDiv(a: bigint, b: bigint): bigint {
  return (a + b - 1n) / b;
}

export function gpuRate(card: RateCard, model: string | undefined): bigint {
  if (model !== undefined) {
    const exact = card.perGpuSecondByModel[model];
    if (exact !== undefined) return BigInt(exact);
  }
  return BigInt(card.perGpuSecond);
}

export function leaseRates(card: RateCard, allocation: { memoryBytes: number; gpuModels: readonly string[] }): Rates {
  const memory = ceilDiv(BigInt(allocation.memoryBytes) * BigInt(card.perGiBMemorySecond), GIB);
  return {
    perSecond: BigInt(card.perLeaseSecond) + memory,
    perCpuSecond: BigInt(card.perCpuSecond),
    perGpuSecond: allocation.gpuModels.length > 0 ? gpuRate(card, allocation.gpuModels[0]) : 0n,
    perGiBEgress: BigInt(card.perGiBEgress),
  };
}

export function maxRatePerSecond(rates: Rates, allocation: { cpuMillis: number; gpuCount: number }): bigint {
  const cpu = ceilDiv(rates.perCpuSecond * BigInt(allocation.cpuMillis) * 5n, 4n * 1000n);
  const gpu = rates.perGpuSecond * BigInt(allocation.gpuCount);
  const egress = ceilDiv(rates.perGiBEgress * EGRESS_ALLOWANCE_BYTES_PER_SECOND, GIB);
  const max = rates.perSecond + cpu + gpu + egress;
  // The contract refuses a zero cap: a free lease still needs a positive one.
  return max > 0n ? max : 1n;
}

/** The most a unilateral claim may ask at `periodEnd` (contract: maxRatePerSecond × elapsed, and the escrow). */
export function claimCap(maxRate: bigint, openedAt: number, periodEnd: number, deposit: bigint): bigint {
  const elapsed = BigInt(Math.max(0, periodEnd - openedAt));
  const byRate = maxRate * elapsed;
  return byRate < deposit ? byRate : deposit;
}
