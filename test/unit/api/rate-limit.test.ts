import { isProviderError, type ProviderError } from '../../../src/errors';
import { KeyedBuckets, RequestRateLimiter, addressKey, takeToken, type BucketState } from '../../../src/api/rate-limit';
import { manualClock } from '../../../src/util/clock';

const SETTINGS = { perMinute: 60, burst: 3 };

function refusal(fn: () => void): ProviderError {
  try {
    fn();
  } catch (err) {
    if (isProviderError(err)) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('takeToken (a token bucket, pure)', () => {
  it.each<[string, BucketState | undefined, number, boolean, number]>([
    // name, state before, now, allowed, tokens after
    ['a new key starts with a full bucket', undefined, 0, true, 2],
    ['takes the last token', { tokens: 1, at: 0 }, 0, true, 0],
    ['refuses an empty bucket', { tokens: 0, at: 0 }, 0, false, 0],
    ['refills at perMinute (one a second here)', { tokens: 0, at: 0 }, 1_000, true, 0],
    ['refills no more than burst', { tokens: 0, at: 0 }, 3_600_000, true, 2],
    ['a clock that went back refills nothing', { tokens: 0.5, at: 10_000 }, 5_000, false, 0.5],
  ])('%s', (_name, before, now, allowed, tokensAfter) => {
    const result = takeToken(before, now, SETTINGS);
    expect(result.allowed).toBe(allowed);
    expect(result.state.tokens).toBeCloseTo(tokensAfter, 9);
  });

  it('says how long until the next token', () => {
    const result = takeToken({ tokens: 0.25, at: 0 }, 0, SETTINGS);
    expect(result).toMatchObject({ allowed: false, retryAfterMs: 750 });
  });
});

describe('KeyedBuckets', () => {
  it('keeps at most maxKeys keys, forgetting the least recently seen', () => {
    const buckets = new KeyedBuckets(SETTINGS, 100);
    for (let i = 0; i < 10_000; i += 1) buckets.take(`attacker-${i}`, 0);
    expect(buckets.size).toBe(100);
  });

  it('a key seen recently survives a flood of new keys', () => {
    const buckets = new KeyedBuckets({ perMinute: 1, burst: 1 }, 3);
    buckets.take('tenant', 0);
    buckets.take('a', 0);
    buckets.take('b', 0);
    // Seen again: it is the most recent now, and its bucket is still empty.
    expect(buckets.take('tenant', 0).allowed).toBe(false);
    buckets.take('c', 0);
    expect(buckets.take('tenant', 0).allowed).toBe(false);
  });
});

describe('RequestRateLimiter', () => {
  const settings = { perTenant: { perMinute: 6, burst: 2 }, perAddress: { perMinute: 60, burst: 5 }, maxTrackedKeys: 1000 };

  it('refuses a tenant past its burst with RATE_LIMITED and a Retry-After, then serves it once refilled', () => {
    const clock = manualClock(1_000_000);
    const refused: string[] = [];
    const limiter = new RequestRateLimiter(settings, clock, (action, scope) => refused.push(`${action}/${scope}`));
    limiter.check('quote', '0xAbC', '10.0.0.1');
    limiter.check('quote', '0xabc', '10.0.0.2');
    const err = refusal(() => limiter.check('quote', '0xabc', '10.0.0.3'));
    expect(err.code).toBe('RATE_LIMITED');
    expect(err.retryAfterSeconds).toBe(10);
    expect(err.fix).toMatch(/wait 10 s/);
    expect(refused).toEqual(['quote/tenant']);
    clock.advance(10_000);
    expect(() => limiter.check('quote', '0xabc', '10.0.0.3')).not.toThrow();
  });

  it('refuses one address cycling through many keys', () => {
    const limiter = new RequestRateLimiter(settings, manualClock(0));
    for (let i = 0; i < 5; i += 1) limiter.check('quote', `0x${i}`, '192.0.2.7');
    expect(refusal(() => limiter.check('quote', '0xnew', '192.0.2.7')).code).toBe('RATE_LIMITED');
    // Another address, and the same key elsewhere, are not held back by it.
    expect(() => limiter.check('quote', '0xother', '192.0.2.8')).not.toThrow();
  });

  it('counts each action apart', () => {
    const limiter = new RequestRateLimiter(settings, manualClock(0));
    limiter.check('quote', '0xa', '192.0.2.1');
    limiter.check('quote', '0xa', '192.0.2.1');
    expect(() => limiter.check('exec', '0xa', '192.0.2.1')).not.toThrow();
  });
});

describe('addressKey', () => {
  it.each([
    ['192.0.2.1', '192.0.2.1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:DB8:0001:0002:ffff::1%eth0', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
    [undefined, 'unknown'],
  ])('%s is bucketed as %s', (address, key) => {
    expect(addressKey(address)).toBe(key);
  });
});
