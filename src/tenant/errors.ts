import type { UsageEvidence } from './verify';
import { ProviderError, type ProviderErrorOptions } from '../errors';

/** The provider answered with an error body: `remoteCode` is its code (AUTH_FORBIDDEN...). */
export class ProviderRefusedError extends ProviderError {
  constructor(
    readonly status: number,
    readonly remoteCode: string,
    message: string,
    options: ProviderErrorOptions = {},
  ) {
    super('PROVIDER_REFUSED', `provider refused (${status} ${remoteCode}): ${message}`, { ...options, input: { status, code: remoteCode } });
    this.name = 'ProviderRefusedError';
  }
}

export function isRefusedWith(err: unknown, remoteCode: string): err is ProviderRefusedError {
  return err instanceof ProviderRefusedError && err.remoteCode === remoteCode;
}

/** Why the client will not trust a quote. */
export type QuoteFault =
  | 'wrong-provider'
  | 'provider-not-registered'
  | 'bad-signature'
  | 'quote-hash'
  | 'manifest-hash'
  | 'other-tenant'
  | 'expired'
  | 'duration'
  | 'rates'
  | 'allocation';

/** Why the client will not trust a usage view. */
export type UsageFault =
  | 'wrong-lease'
  | 'rates'
  | 'seq'
  | 'interval'
  | 'amount'
  | 'proof'
  | 'root'
  | 'cumulative'
  | 'checkpoint-signature'
  | 'checkpoint-order'
  | 'no-checkpoint'
  | 'chain-mismatch'
  /** A record or two disprove the checkpoint: the contract upholds a dispute. */
  | 'disputable'
  /** Two signed checkpoints conflict: the contract upholds an equivocation dispute. */
  | 'equivocation'
  /** A record the checkpoint covers was not served: nothing to dispute, nothing to countersign. */
  | 'missing-record';

export class QuoteUntrustedError extends ProviderError {
  constructor(
    readonly fault: QuoteFault,
    message: string,
  ) {
    super('QUOTE_UNTRUSTED', `quote refused: ${message}`, { input: fault, fix: 'do not open a lease with this quote; ask again or use another provider' });
    this.name = 'QuoteUntrustedError';
  }
}

export class UsageUnverifiedError extends ProviderError {
  constructor(
    readonly fault: UsageFault,
    message: string,
    readonly seq?: bigint,
    /** The evidence a dispute files (TenantClient.dispute), when the contract would uphold one. */
    readonly evidence?: UsageEvidence,
  ) {
    super('USAGE_UNVERIFIED', `usage refused: ${message}`, {
      input: { fault, seq },
      // A record not served is evidence of nothing on-chain: there is no dispute to file for it.
      fix:
        evidence && !(evidence.kind === 'records' && evidence.dispute.kind === 'missing')
          ? 'do not countersign; file the dispute (`provider dispute <leaseId>`) before the claim is payable'
          : 'do not countersign; keep the view as evidence for a dispute',
    });
    this.name = 'UsageUnverifiedError';
  }
}

export function isQuoteFault(err: unknown, fault: QuoteFault): boolean {
  return err instanceof QuoteUntrustedError && err.fault === fault;
}

export function isUsageFault(err: unknown, fault: UsageFault): boolean {
  return err instanceof UsageUnverifiedError && err.fault === fault;
}
