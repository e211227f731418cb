import type { ProviderConfig } from '../config';
import type { Allocation, Rates } from '../chain';

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
 * The quote also commits the lease's allocation (what it may physically use): its CPU in
 * millicores, its GPUs, and its egress per second (config runtime.egress.bytesPerSecond; 0 for a
 * lease without egress). The contract's cap on a unilateral claim follows from rates × allocation
 * (ceilingRate in src/chain), and the meter bills no record above the allocation.
 *
 * `minimumPerLease` cannot be a record amount (each record must follow the formula, or it is
 * disputable), so it is the least deposit a lease must escrow: a lease opened with less is not run.
 */

export type RateCard = ProviderConfig['pricing'];

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

/** What a lease may use, as its quote commits it. */
export function leaseAllocation(
  runtime: Pick<ProviderConfig['runtime'], 'egress'>,
  lease: { cpuMillis: number; gpuCount: number; egress: 'public' | 'none' },
): Allocation {
  return {
    cpuMillicores: BigInt(lease.cpuMillis),
    gpuCount: BigInt(lease.gpuCount),
    egressBytesPerSecond: lease.egress === 'none' || !runtime.egress.public ? 0n : BigInt(runtime.egress.bytesPerSecond),
  };
}
