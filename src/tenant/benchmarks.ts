import { getAddress } from 'ethers';
import type { Offer } from '../api';
import { verifyBenchmarks, type BenchmarkSummary } from '../benchmark';
import { ProviderError } from '../errors';

/**
 * The GPU benchmark an offer publishes, checked: signed by the provider key over exactly these
 * figures. `provider`: the address the tenant trusts for this provider (its marketplace
 * registration), never the one the offer names alone, or a forger would sign for itself.
 * Null when the offer has no benchmark; BENCHMARK_INVALID when it has one that does not hold.
 */
export function verifyOfferBenchmarks(offer: Pick<Offer, 'provider' | 'benchmarks'>, provider: string): BenchmarkSummary | null {
  if (getAddress(offer.provider) !== getAddress(provider)) {
    throw new ProviderError('BENCHMARK_INVALID', `the offer is ${offer.provider}'s, not ${getAddress(provider)}'s`, { input: offer.provider });
  }
  return offer.benchmarks === null ? null : verifyBenchmarks(offer.benchmarks, provider);
}

export { verifyBenchmarks };
