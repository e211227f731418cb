/** Capacity in the dimensions a quote holds and a share bounds. */
export interface HeldAmounts {
  cpuMillis: number;
  memoryBytes: number;
  gpus: number;
}

export interface ShareExcess {
  dimension: keyof HeldAmounts;
  /** What the tenant would hold with this quote. */
  wouldHold: number;
  /** The most it may hold: share × (free + what it holds). */
  limit: number;
}

/**
 * Whether one more quote would put a tenant past its share of the free capacity. The pool is what
 * is free now plus what the tenant's own quotes hold (what it would find free had it asked for
 * nothing). A tenant's first outstanding quote is not bounded: one lease may want the whole machine
 * (a single GPU cannot be shared), and what keeps a stranger from holding it for free is the
 * funding check and the re-quote release; further quotes are. Pure: tested as a table.
 */
export function quoteShareExcess(held: HeldAmounts, outstanding: number, asked: HeldAmounts, free: HeldAmounts, share: number): ShareExcess | undefined {
  if (outstanding === 0) return undefined;
  for (const dimension of ['cpuMillis', 'memoryBytes', 'gpus'] as const) {
    if (asked[dimension] <= 0) continue;
    const wouldHold = held[dimension] + asked[dimension];
    const limit = Math.floor(share * (free[dimension] + held[dimension]));
    if (wouldHold > limit) return { dimension, wouldHold, limit };
  }
  return undefined;
}
