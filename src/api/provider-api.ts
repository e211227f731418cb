import type { Logger } from '../log';
import { LogStreamServer } from './log-stream';
import { operatorHistoryRoutes, type OperatorHistoryService } from './operator-history-routes';
import type { ProviderMetrics } from './metrics';
import type { RequestRateLimiter } from './rate-limit';
import { providerRoutes } from './routes';
import { ApiServer, type OperatorAccess, type Route } from './server';
import type { ProviderService } from './service';
import type { TenantAuthenticator } from './tenant-auth';

export interface ProviderApiOptions {
  service: ProviderService;
  metrics: ProviderMetrics;
  /** Limits on quote requests (per tenant, per address). */
  limiter?: RequestRateLimiter;
  authenticator: TenantAuthenticator;
  maxBodyBytes: number;
  log: Logger;
  requestTimeoutMs?: number;
  /** Log stream send buffer above which reading pauses. */
  logHighWaterMarkBytes?: number;
  /** The dashboard's views (capacity, earnings over time, recent errors) as operator routes. */
  history?: OperatorHistoryService;
  /** More routes on the same port (the dashboard's page and files). */
  extraRoutes?: readonly Route<never>[];
  /** Who else may use the operator routes (ApiServerOptions.operatorAccess). */
  operatorAccess?: OperatorAccess;
}

/** The provider's API server: the §3.2 routes plus the log WebSocket, on one port. */
export function createProviderApi(options: ProviderApiOptions): ApiServer {
  const log = options.log.child({ module: 'api' });
  const logs = new LogStreamServer({
    service: options.service,
    authenticator: options.authenticator,
    log,
    ...(options.logHighWaterMarkBytes === undefined ? {} : { highWaterMarkBytes: options.logHighWaterMarkBytes }),
  });
  return new ApiServer({
    routes: [
      ...providerRoutes({ service: options.service, metrics: options.metrics, ...(options.limiter ? { limiter: options.limiter } : {}) }),
      ...(options.history ? operatorHistoryRoutes(options.history) : []),
      ...(options.extraRoutes ?? []),
    ],
    authenticator: options.authenticator,
    maxBodyBytes: options.maxBodyBytes,
    log,
    upgrade: logs,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    ...(options.operatorAccess ? { operatorAccess: options.operatorAccess } : {}),
  });
}
