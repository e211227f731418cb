import type { EndReason } from '../vocabulary';

export interface LeaseLimits {
  /** The chain's startedAt (unix seconds). */
  openedAt: number;
  maxDuration: number;
  deposit: bigint;
}

export type LimitBreach = { reason: Extract<EndReason, 'max-duration' | 'escrow-exhausted'>; detail: string };

/**
 * The limits a running lease must end at: its maxDuration, and its deposit used up. Pure: the
 * meter asks after every sample with what the records add up to.
 */
export function limitBreach(lease: LeaseLimits, spent: bigint, nowSeconds: number): LimitBreach | undefined {
  if (nowSeconds >= lease.openedAt + lease.maxDuration) return { reason: 'max-duration', detail: `maxDuration of ${lease.maxDuration}s reached` };
  if (spent >= lease.deposit) return { reason: 'escrow-exhausted', detail: `usage ${spent} reached the deposit ${lease.deposit}` };
  return undefined;
}
