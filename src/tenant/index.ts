export { signRequest } from './request-signer';
export type { SignOptions } from './request-signer';
export { TenantClient, type TenantClientOptions, type OpenedLease, type LogsOptions, type VerifiedQuote } from './tenant-client';
export { verifyQuote, verifyUsage, type QuoteExpectations, type UsageExpectations, type VerifiedUsage, type LeaseOnChain, type UsageEvidence } from './verify';
export { verifyOfferBenchmarks, verifyBenchmarks } from './benchmarks';
export { claimNotDisputable, disputeCalldata, type DisputeOutcome } from './dispute';
export {
  ProviderRefusedError,
  QuoteUntrustedError,
  UsageUnverifiedError,
  isRefusedWith,
  isQuoteFault,
  isUsageFault,
  type QuoteFault,
  type UsageFault,
} from './errors';
