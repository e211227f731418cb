import type { Offer } from '../../../../src/api';
import { filterProviders, fitsOffer, freeGpus, pricePerSecond, sortProviders, whyNoneFits, type ProviderListing } from '../../../../src/cli/tenant/offers';
import { readMetadata } from '../../../../src/cli/tenant/registry';

function anOffer(overrides: Partial<Offer> & { gpus?: Offer['free']['gpus']; perCpuSecond?: string; perGpuSecondByModel?: Record<string, string> } = {}): Offer {
  const { gpus, perCpuSecond, perGpuSecondByModel, ...rest } = overrides;
  return {
    provider: '0x0000000000000000000000000000000000000001',
    chainId: 31337,
    marketplace: '0x0000000000000000000000000000000000000002',
    region: 'eu-west',
    accepting: true,
    free: { cpuMillis: 8_000, memoryBytes: 16 * 2 ** 30, diskBytes: 0, gpus: gpus ?? [] },
    rateCard: {
      perLeaseSecond: '0',
      perCpuSecond: perCpuSecond ?? '1000',
      perGiBMemorySecond: '100',
      perGpuSecond: '100000',
      perGpuSecondByModel: perGpuSecondByModel ?? {},
      perGiBEgress: '0',
      minimumPerLease: '0',
    },
    maxLeaseDurationSeconds: 86_400,
    gpuModels: [],
    benchmarks: null,
    ...rest,
  };
}

function aListing(provider: string, offer: Offer | null, latencyMs = 10): ProviderListing {
  return { provider, apiUrl: `http://${provider}.invalid`, region: offer?.region ?? null, tlsPin: null, offer, unreachable: offer ? null : { code: 'PROVIDER_UNREACHABLE', message: 'down' }, latencyMs: offer ? latencyMs : null };
}

const H100 = { model: 'NVIDIA H100 80GB HBM3', profile: null, memoryBytes: 80 * 2 ** 30, count: 2 };
const A10 = { model: 'NVIDIA A10', profile: null, memoryBytes: 24 * 2 ** 30, count: 1 };

describe('comparing provider offers', () => {
  it('counts free GPUs by model substring, case-insensitively', () => {
    const offer = anOffer({ gpus: [H100, A10] });
    expect(freeGpus(offer)).toBe(3);
    expect(freeGpus(offer, 'h100')).toBe(2);
    expect(freeGpus(offer, 'V100')).toBe(0);
  });

  it('prices a lease at its ceiling per second, with a GPU model\'s own rate when the card names it', () => {
    const offer = anOffer({ perGpuSecondByModel: { 'NVIDIA H100 80GB HBM3': '500000' } });
    expect(pricePerSecond(offer, { cpuMillis: 2_000, memoryBytes: 2 ** 30, gpus: 0 })).toBe(2_000n + 100n);
    expect(pricePerSecond(offer, { cpuMillis: 1_000, memoryBytes: 0, gpus: 2, gpuModel: 'H100' })).toBe(1_000n + 1_000_000n);
    expect(pricePerSecond(offer, { cpuMillis: 1_000, memoryBytes: 0, gpus: 1, gpuModel: 'A10' })).toBe(1_000n + 100_000n);
  });

  it('fits a lease only where CPU, memory and GPUs of the model are free and the provider accepts', () => {
    const need = { cpuMillis: 1_000, memoryBytes: 2 ** 30, gpus: 1, gpuModel: 'H100' };
    expect(fitsOffer(anOffer({ gpus: [H100] }), need)).toBe(true);
    expect(fitsOffer(anOffer({ gpus: [A10] }), need)).toBe(false);
    expect(fitsOffer(anOffer({ gpus: [H100], accepting: false }), need)).toBe(false);
    expect(fitsOffer(anOffer({ gpus: [H100], free: { cpuMillis: 500, memoryBytes: 2 ** 34, diskBytes: 0, gpus: [H100] } }), need)).toBe(false);
  });

  it('filters by GPU model, region and CPU price, and leaves unreachable providers out unless asked', () => {
    const listings = [
      aListing('a', anOffer({ gpus: [H100], region: 'eu-west' })),
      aListing('b', anOffer({ gpus: [A10], region: 'us-east', perCpuSecond: '5000' })),
      aListing('c', null),
    ];
    expect(filterProviders(listings, { gpu: 'h100' }).map((l) => l.provider)).toEqual(['a']);
    expect(filterProviders(listings, { region: 'US-EAST' }).map((l) => l.provider)).toEqual(['b']);
    expect(filterProviders(listings, { maxCpuPrice: 1_000n }).map((l) => l.provider)).toEqual(['a']);
    expect(filterProviders(listings, { reachableOnly: true }).map((l) => l.provider)).toEqual(['a', 'b']);
    expect(filterProviders(listings, {}).map((l) => l.provider)).toEqual(['a', 'b', 'c']);
  });

  it('sorts by price, GPU price, free CPU, region or latency, ties by address, those without an offer last', () => {
    const listings = [
      aListing('d', null),
      aListing('c', anOffer({ perCpuSecond: '3000', region: 'ap', perGpuSecondByModel: { 'NVIDIA A10': '10' } }), 30),
      aListing('a', anOffer({ perCpuSecond: '1000', region: 'us', free: { cpuMillis: 2_000, memoryBytes: 2 ** 30, diskBytes: 0, gpus: [] } }), 20),
      aListing('b', anOffer({ perCpuSecond: '1000', region: 'eu' }), 10),
    ];
    const ids = (by: Parameters<typeof sortProviders>[1], model?: string) => sortProviders(listings, by, undefined, model).map((l) => l.provider);
    expect(ids('price')).toEqual(['a', 'b', 'c', 'd']);
    expect(ids('gpu-price', 'A10')).toEqual(['c', 'a', 'b', 'd']);
    expect(ids('free-cpu')).toEqual(['b', 'c', 'a', 'd']);
    expect(ids('region')).toEqual(['c', 'b', 'a', 'd']);
    expect(ids('latency')).toEqual(['b', 'a', 'c', 'd']);
  });

  it('reads region and the TLS pin (tls.sha256, as the daemon registers it) from registration metadata, and nothing from junk', () => {
    const pin = 'ab'.repeat(32);
    expect(readMetadata(JSON.stringify({ region: 'eu', tls: { sha256: pin } }))).toEqual({ region: 'eu', tlsPin: pin });
    // openssl's spelling is read too; a pin of the wrong length is none.
    expect(readMetadata(JSON.stringify({ tls: { sha256: Array(32).fill('CD').join(':') } }))).toEqual({ region: null, tlsPin: 'cd'.repeat(32) });
    expect(readMetadata('{"tls":{"sha256":"abcd"}}')).toEqual({ region: null, tlsPin: null });
    expect(readMetadata('not json')).toEqual({ region: null, tlsPin: null });
    expect(readMetadata('{"region":42}')).toEqual({ region: null, tlsPin: null });
  });

  it('tells a tenant why no provider was chosen: none registered yet, none answering, none accepting, none with room', () => {
    const market = '0x00000000000000000000000000000000000000aa';
    expect(whyNoneFits([], market)).toEqual({
      message: `no provider is registered on the marketplace ${market}`,
      fix: expect.stringContaining('once its `provider start` has registered it'),
    });
    expect(whyNoneFits([aListing('0x01', null), aListing('0x02', null)], market)).toEqual({
      message: 'no provider answered with an offer (2 registered; the first: PROVIDER_UNREACHABLE: down)',
      fix: expect.stringContaining('provider tenant providers --all'),
    });
    expect(whyNoneFits([aListing('0x01', anOffer({ accepting: false })), aListing('0x02', null)], market).message).toBe('no provider is accepting leases now (1 answered of 2 registered)');
    expect(whyNoneFits([aListing('0x01', anOffer()), aListing('0x02', anOffer({ accepting: false })), aListing('0x03', null)], market)).toEqual({
      message: 'no provider has room for this manifest (1 accepting leases of 3 registered)',
      fix: expect.stringContaining('ask for less'),
    });
  });
});
