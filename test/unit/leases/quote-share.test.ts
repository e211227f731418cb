import { quoteShareExcess, type HeldAmounts } from '../../../src/leases/quote-share';

const amounts = (cpuMillis: number, memoryBytes = 0, gpus = 0): HeldAmounts => ({ cpuMillis, memoryBytes, gpus });

describe('quoteShareExcess (a tenant\'s share of free capacity in open quotes)', () => {
  it.each<[string, HeldAmounts, number, HeldAmounts, HeldAmounts, number, string | undefined]>([
    // name, held, outstanding, asked, free, share, dimension over (or none)
    ['a first quote may take all that is free', amounts(0), 0, amounts(4000), amounts(4000), 0.5, undefined],
    ['a second quote within the share', amounts(1000), 1, amounts(500), amounts(3000), 0.5, undefined],
    ['exactly at the share', amounts(1000), 1, amounts(1000), amounts(3000), 0.5, undefined],
    ['a second quote past the share', amounts(1000), 1, amounts(1100), amounts(3000), 0.5, 'cpuMillis'],
    ['100m quotes on a 2-core machine: the tenth still fits in half', amounts(900), 9, amounts(100), amounts(1100), 0.5, undefined],
    ['100m quotes on a 2-core machine: the eleventh is past half', amounts(1000), 10, amounts(100), amounts(1000), 0.5, 'cpuMillis'],
    ['memory is bounded as well', amounts(100, 600), 1, amounts(100, 500), amounts(1000, 1000), 0.5, 'memoryBytes'],
    ['GPUs: a second GPU quote on a two-GPU machine at share 0.5', amounts(0, 0, 1), 1, amounts(0, 0, 1), amounts(0, 0, 1), 0.5, 'gpus'],
    ['a dimension not asked for is not checked', amounts(0, 0, 2), 1, amounts(100), amounts(10_000, 0, 0), 0.5, undefined],
    ['share 1: anything free', amounts(3000), 3, amounts(1000), amounts(1000), 1, undefined],
  ])('%s', (_name, held, outstanding, asked, free, share, over) => {
    expect(quoteShareExcess(held, outstanding, asked, free, share)?.dimension).toBe(over);
  });

  it('names what the tenant would hold and its limit', () => {
    expect(quoteShareExcess(amounts(1000), 10, amounts(100), amounts(1000), 0.5)).toEqual({ dimension: 'cpuMillis', wouldHold: 1100, limit: 1000 });
  });
});
