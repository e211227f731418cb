import type { Offer } from '../../api';

/**
 * Providers as a tenant compares them: what the registry says, what the live offer says (or why
 * there is none), and the pure logic that filters, prices and sorts them. No I/O here.
 */

export interface ProviderListing {
  provider: string;
  apiUrl: string;
  /** The registration's metadata, when it is JSON. */
  region: string | null;
  /** The TLS certificate fingerprint the provider pinned in its metadata, when it did. */
  tlsPin: string | null;
  offer: Offer | null;
  /** Why there is no offer: the code of the failure (PROVIDER_UNREACHABLE, CHAIN_ID_MISMATCH…). */
  unreachable: { code: string; message: string } | null;
  /** Milliseconds the offer took. */
  latencyMs: number | null;
}

export interface ProviderFilter {
  /** Substring of a GPU model, case-insensitive: only providers with such a GPU free. */
  gpu?: string;
  /** Region, exact (case-insensitive). */
  region?: string;
  /** At most this many token base units per CPU-second. */
  maxCpuPrice?: bigint;
  /** Only those whose offer answered and that accept leases. */
  reachableOnly?: boolean;
  /** What the lease needs free: those that cannot fit it are left out. */
  fits?: { cpuMillis: number; memoryBytes: number; gpus: number; gpuModel?: string | undefined };
}

export type ProviderSort = 'price' | 'gpu-price' | 'free-cpu' | 'region' | 'latency';

export const PROVIDER_SORTS: readonly ProviderSort[] = ['price', 'gpu-price', 'free-cpu', 'region', 'latency'];

/** Free GPUs of a model (substring, case-insensitive; any model when left out). */
export function freeGpus(offer: Offer, model?: string): number {
  const needle = model?.toLowerCase();
  return offer.free.gpus.filter((g) => needle === undefined || g.model.toLowerCase().includes(needle)).reduce((sum, g) => sum + g.count, 0);
}

/** The GPU-second price for a model on this offer: its own rate, else the default one. */
export function gpuPrice(offer: Offer, model?: string): bigint {
  const card = offer.rateCard;
  if (model) {
    const needle = model.toLowerCase();
    const named = Object.entries(card.perGpuSecondByModel).find(([m]) => m.toLowerCase().includes(needle));
    if (named) return BigInt(named[1]);
  }
  return BigInt(card.perGpuSecond);
}

/**
 * The most a lease of this shape costs per second on the offer's rate card (CPU fully used, its
 * memory and GPUs held): the number to compare providers by. Egress is left out: it depends on use.
 */
export function pricePerSecond(offer: Offer, need: { cpuMillis: number; memoryBytes: number; gpus: number; gpuModel?: string | undefined }): bigint {
  const card = offer.rateCard;
  const cpu = (BigInt(card.perCpuSecond) * BigInt(need.cpuMillis)) / 1000n;
  const memory = (BigInt(card.perGiBMemorySecond) * BigInt(need.memoryBytes)) / BigInt(2 ** 30);
  const gpu = gpuPrice(offer, need.gpuModel) * BigInt(need.gpus);
  return BigInt(card.perLeaseSecond) + cpu + memory + gpu;
}

export function fitsOffer(offer: Offer, need: NonNullable<ProviderFilter['fits']>): boolean {
  return offer.accepting && offer.free.cpuMillis >= need.cpuMillis && offer.free.memoryBytes >= need.memoryBytes && freeGpus(offer, need.gpuModel) >= need.gpus;
}

export function filterProviders(listings: readonly ProviderListing[], filter: ProviderFilter): ProviderListing[] {
  return listings.filter((l) => {
    if (filter.region !== undefined && (l.offer?.region ?? l.region ?? '').toLowerCase() !== filter.region.toLowerCase()) return false;
    if ((filter.reachableOnly || filter.gpu !== undefined || filter.maxCpuPrice !== undefined || filter.fits) && (!l.offer || !l.offer.accepting)) return false;
    if (!l.offer) return true;
    if (filter.gpu !== undefined && freeGpus(l.offer, filter.gpu) === 0) return false;
    if (filter.maxCpuPrice !== undefined && BigInt(l.offer.rateCard.perCpuSecond) > filter.maxCpuPrice) return false;
    if (filter.fits && !fitsOffer(l.offer, filter.fits)) return false;
    return true;
  });
}

/**
 * Sorted by `by`, ties by address, so the order is stable. Those without an offer always come
 * last: a price or a free count they do not state cannot be compared.
 */
export function sortProviders(listings: readonly ProviderListing[], by: ProviderSort, need?: NonNullable<ProviderFilter['fits']>, gpuModel?: string): ProviderListing[] {
  const key = (l: ProviderListing): bigint | string => {
    const o = l.offer;
    if (!o) return 0n;
    switch (by) {
      case 'price':
        return pricePerSecond(o, need ?? { cpuMillis: 1000, memoryBytes: 2 ** 30, gpus: 0 });
      case 'gpu-price':
        return gpuPrice(o, gpuModel);
      case 'free-cpu':
        return -BigInt(o.free.cpuMillis);
      case 'region':
        return o.region.toLowerCase();
      case 'latency':
        return BigInt(l.latencyMs ?? Number.MAX_SAFE_INTEGER);
    }
  };
  return [...listings].sort((a, b) => {
    if (!a.offer !== !b.offer) return a.offer ? -1 : 1;
    const ka = key(a);
    const kb = key(b);
    if (ka < kb) return -1;
    if (ka > kb) return 1;
    return a.provider.toLowerCase().localeCompare(b.provider.toLowerCase());
  });
}

/**
 * Why no provider was chosen for a manifest, in the tenant's terms: nobody registered yet (a
 * provider that is still starting), nobody answering, nobody accepting, or nobody with room.
 */
export function whyNoneFits(found: readonly ProviderListing[], marketplace: string): { message: string; fix: string } {
  if (found.length === 0) {
    return {
      message: `no provider is registered on the marketplace ${marketplace}`,
      fix: 'a provider is listed once its `provider start` has registered it (its start says "press Ctrl-C to stop" then); if one has, check that --config or --rpc-url name the chain it registered on',
    };
  }
  const answered = found.filter((l) => l.offer);
  if (answered.length === 0) {
    const why = found[0]!.unreachable;
    const example = why ? `; ${found.length > 1 ? 'the first: ' : ''}${why.code}: ${why.message}` : '';
    return {
      message: `no provider answered with an offer (${found.length} registered${example})`,
      fix: 'see `provider tenant providers --all` for why each one is unreachable, or try again later',
    };
  }
  const accepting = answered.filter((l) => l.offer!.accepting);
  if (accepting.length === 0) {
    return {
      message: `no provider is accepting leases now (${answered.length} answered of ${found.length} registered)`,
      fix: 'try again later (a provider draining for maintenance accepts again when it comes back), or name one with --provider',
    };
  }
  return {
    message: `no provider has room for this manifest (${accepting.length} accepting leases of ${found.length} registered)`,
    fix: 'ask for less (resources), or see `provider tenant providers --all` for what is free',
  };
}
