import type { Logger } from '../log';
import { LogStreamServer } from './log-stream';
import type { ProviderMetrics } from './metrics';
import type { RequestRateLimiter } from './rate-limit';
import { providerRoutes } from './routes';
import { ApiServer } from './server';
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
  /** PEM certificate and key: the API speaks HTTPS (the log stream WSS). */
  tls?: { cert: string; key: string };
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
    routes: providerRoutes({ service: options.service, metrics: options.metrics, ...(options.limiter ? { limiter: options.limiter } : {}) }),
    authenticator: options.authenticator,
    maxBodyBytes: options.maxBodyBytes,
    log,
    upgrade: logs,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  });
}

/**
 * The operator's door: plain HTTP on loopback for the commands on the provider machine, which
 * hold no pin. Every route but the tenants' (their requests carry manifests and must travel in
 * TLS); no log WebSocket (operators follow logs over NDJSON).
 */
export function createOperatorApi(options: Pick<ProviderApiOptions, 'service' | 'metrics' | 'maxBodyBytes' | 'log' | 'requestTimeoutMs'>): ApiServer {
  const routes = providerRoutes({ service: options.service, metrics: options.metrics }).filter((route) => route.auth !== 'tenant');
  return new ApiServer({
    routes,
    authenticator: undefined,
    maxBodyBytes: options.maxBodyBytes,
    log: options.log.child({ module: 'operator-api' }),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  });
}
