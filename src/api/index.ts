export { ApiServer, errorResponse } from './server';
export type { Route, RouteContext, RouteResult, ApiServerOptions, ErrorBody, OperatorAccess } from './server';
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
  LogQuery,
  LogEntry,
  DaemonStatus,
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
export { createProviderApi, type ProviderApiOptions } from './provider-api';
export { localUrl, localApiUrl } from './local-url';
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
