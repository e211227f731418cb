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
export { PinnedTransport, connectPinned, pinMismatch, type PinSource, type PinnedRequest } from './pinned-transport';
export { resolveProviderEndpoint, registeredPin, pinFromMetadata, type ProviderEndpoint } from './provider-endpoint';
export { openLeaseSocket, authHeaders, transportOf, type LeaseEndpoint } from './lease-transport';
export { openExec, runShell, type ExecOptions, type ExecHandle, type LocalTerminal } from './exec-client';
export { forwardPort, type PortForward, type PortForwardOptions } from './port-forward';
export { mintAccessToken, listAccessTokens, revokeAccessToken, type MintedAccessToken, type AccessTokenSummary } from './access-tokens';
