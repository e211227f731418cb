export { ApiServer, errorResponse } from './server';
export type { Route, RouteContext, RouteResult, ApiServerOptions, ErrorBody } from './server';
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
} from './service';
