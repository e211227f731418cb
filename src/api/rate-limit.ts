import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';

export interface BucketSettings {
  /** Tokens refilled per minute. */
  perMinute: number;
  /** The most tokens the bucket holds: requests that may come at once. */
  burst: number;
}

export interface BucketState {
  tokens: number;
  /** Epoch ms of `tokens`. */
  at: number;
}

export type TakeResult = { allowed: true; state: BucketState } | { allowed: false; state: BucketState; retryAfterMs: number };

/** A token bucket's answer to one request at `now`: pure, so it is tested as a table. */
export function takeToken(state: BucketState | undefined, now: number, settings: BucketSettings): TakeResult {
  const perMs = settings.perMinute / 60_000;
  const elapsed = state ? Math.max(0, now - state.at) : 0;
  const tokens = state ? Math.min(settings.burst, state.tokens + elapsed * perMs) : settings.burst;
  if (tokens >= 1) return { allowed: true, state: { tokens: tokens - 1, at: now } };
  return { allowed: false, state: { tokens, at: now }, retryAfterMs: Math.ceil((1 - tokens) / perMs) };
}

/**
 * Token buckets by key with a bound on the keys kept: past `maxKeys` the least recently seen is
 * forgotten. Forgetting a key gives it a full bucket again, which favours whoever it was; an
 * attacker with many keys gains a burst per key it cycles through, and the per-address buckets are
 * what bound that.
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, BucketState>();

  constructor(
    private readonly settings: BucketSettings,
    private readonly maxKeys: number,
  ) {}

  take(key: string, now: number): TakeResult {
    const result = takeToken(this.buckets.get(key), now, this.settings);
    // Map keeps insertion order: delete and set again makes it the most recently seen.
    this.buckets.delete(key);
    this.buckets.set(key, result.state);
    while (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value as string;
      this.buckets.delete(oldest);
    }
    return result;
  }

  get size(): number {
    return this.buckets.size;
  }
}

export interface RateLimitSettings {
  perTenant: BucketSettings;
  perAddress: BucketSettings;
  maxTrackedKeys: number;
}

/**
 * The limits on requests that cost the provider something (a quote holds capacity and asks the
 * chain and a registry): one bucket per tenant key and one per source address, per action.
 */
export class RequestRateLimiter {
  private readonly tenants: KeyedBuckets;
  private readonly addresses: KeyedBuckets;

  constructor(
    settings: RateLimitSettings,
    private readonly clock: Clock,
    /** Told of each refusal (a metric). */
    private readonly onRefused: (action: string, scope: 'tenant' | 'address') => void = () => undefined,
  ) {
    this.tenants = new KeyedBuckets(settings.perTenant, settings.maxTrackedKeys);
    this.addresses = new KeyedBuckets(settings.perAddress, settings.maxTrackedKeys);
  }

  /** Throws RATE_LIMITED (429, with Retry-After) when either bucket is empty. */
  check(action: string, tenant: string, remoteAddress: string | undefined): void {
    const now = this.clock.now();
    // The address first: a flood from one host with many keys is refused before its keys cost a bucket each.
    const byAddress = this.addresses.take(`${action}|${addressKey(remoteAddress)}`, now);
    if (!byAddress.allowed) throw this.refusal(action, 'address', byAddress.retryAfterMs);
    const byTenant = this.tenants.take(`${action}|${tenant.toLowerCase()}`, now);
    if (!byTenant.allowed) throw this.refusal(action, 'tenant', byTenant.retryAfterMs);
  }

  private refusal(action: string, scope: 'tenant' | 'address', retryAfterMs: number): ProviderError {
    this.onRefused(action, scope);
    const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    return new ProviderError('RATE_LIMITED', `too many ${action} requests from this ${scope === 'tenant' ? 'tenant key' : 'address'}; try again in ${retryAfterSeconds} s`, {
      fix: `wait ${retryAfterSeconds} s (the Retry-After header) before asking again`,
      retryAfterSeconds,
    });
  }
}

/**
 * The bucket key of a peer address: IPv4 as is (an IPv4-mapped IPv6 address too), IPv6 by its /64,
 * since one host is routinely given a whole /64 and could use a new address per request.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const lower = address.toLowerCase();
  const unzoned = lower.includes('%') ? lower.slice(0, lower.indexOf('%')) : lower;
  if (unzoned.startsWith('::ffff:') && unzoned.includes('.')) return unzoned.slice(7);
  if (!unzoned.includes(':')) return unzoned;
  return `${expandIpv6(unzoned).slice(0, 4).join(':')}::/64`;
}

function expandIpv6(address: string): string[] {
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array.from({ length: missing }, () => '0'), ...right].map((part) => part.replace(/^0+(?=.)/, ''));
}
