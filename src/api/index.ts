export { ApiServer, errorResponse } from './server';
export type { Route, RouteContext, RouteResult, ApiServerOptions, ErrorBody, RequestPassthrough, OperatorAccess } from './server';
export { HTTP_STATUS } from './http-status';
export {
  TenantAuthenticator,
  InMemoryNonceLedger,
  REQUEST_TYPES,
  AUTH_HEADERS,
  requestDomain,
  bodyHash,
} from './tenant-auth';
export type { NonceLedger, SignedRequest, TenantAuthOptions } from './tenant-auth';
export type {
  ProviderService,
  Offer,
  QuoteResponse,
  CheckpointView,
  LeaseView,
  UsageView,
  GpuReadingView,
  LogQuery,
  LogEntry,
  DaemonStatus,
  ReachabilityView,
  GpuHealthStatusView,
  GpuModelOffer,
  OperatorService,
  OperatorLeaseSummary,
  OperatorLeaseDetail,
  EarningsView,
  WithdrawResult,
  CheckpointStatus,
} from './service';
export { isLoopback, isOwnAddress, refuseUpgrade, toJson } from './server';
export type { UpgradeHandler } from './server';
export { providerRoutes, type ProviderRoutesDeps } from './routes';
export { LogStreamServer, type LogStreamOptions } from './log-stream';
export { ProviderMetrics, type CapacityFigures, type EarningsFigures } from './metrics';
export { createProviderApi, createOperatorApi, type ProviderApiOptions, type LeaseAccessOptions } from './provider-api';
export type { AccessibleLease, LeaseDirectory, WorkloadDoor, ExecAudit, AccessTokenStore, AccessSettings } from './lease-access';
export { EXEC_STREAM, execControlWire, type ExecServerMessage } from './exec-server';
export { TOKEN_QUERY, tokenCookieName } from './lease-door';
export { mintBodyWire, type MintedToken, type TokenView } from './access-tokens';
export { localUrl, localApiUrl, publicApiUrl, operatorPortOf } from './local-url';
export * as wire from './wire';
export type { LogEnd, LogMessage } from './wire';
export { RequestRateLimiter, KeyedBuckets, takeToken, addressKey, type BucketSettings, type BucketState, type RateLimitSettings, type TakeResult } from './rate-limit';
export {
  operatorHistoryRoutes,
  capacityViewWire,
  earningsHistoryWire,
  recentErrorsWire,
  type OperatorHistoryService,
  type CapacityView,
  type CapacityAmounts,
  type EarningsHistory,
  type RecentError,
  type RecentErrors,
} from './operator-history-routes';
