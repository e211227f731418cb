import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { AccessTokens, accessTokenRoutes } from './access-tokens';
import { EXEC_PATH, ExecServer } from './exec-server';
import { PerLeaseSlots, type AccessSettings, type AccessTokenStore, type ExecAudit, type LeaseDirectory, type WorkloadDoor } from './lease-access';
import { LeaseDoor } from './lease-door';
import { LogStreamServer } from './log-stream';
import { operatorHistoryRoutes, type OperatorHistoryService } from './operator-history-routes';
import type { ProviderMetrics } from './metrics';
import { PORTS_PATH, PortProxy } from './port-proxy';
import type { RequestRateLimiter } from './rate-limit';
import { providerRoutes } from './routes';
import { ApiServer, type ApiServerOptions, type OperatorAccess, type Route } from './server';
import type { ProviderService } from './service';
import type { TenantAuthenticator } from './tenant-auth';
import { TUNNEL_PATH, TunnelServer } from './tunnel-server';
import { UpgradeRouter } from './upgrade-router';

/** What a tenant reaches of its running leases through the API port: shells, ports, tunnels, tokens. */
export interface LeaseAccessOptions {
  directory: LeaseDirectory;
  backend: WorkloadDoor;
  audit: ExecAudit;
  tokens: AccessTokenStore;
  /** The `access` config section; read at each use, so a reload applies. */
  settings: () => AccessSettings;
  clock: Clock;
}

export interface ProviderApiOptions {
  service: ProviderService;
  metrics: ProviderMetrics;
  /** Limits on quote and exec requests (per tenant, per address). */
  limiter?: RequestRateLimiter;
  authenticator: TenantAuthenticator;
  maxBodyBytes: number;
  log: Logger;
  requestTimeoutMs?: number;
  /** Log stream send buffer above which reading pauses. */
  logHighWaterMarkBytes?: number;
  /** PEM certificate and key: the API speaks HTTPS (the log stream WSS). */
  tls?: { cert: string; key: string };
  /** Without it, no shell, port or tunnel route is served. */
  access?: LeaseAccessOptions;
  /** The dashboard's views (capacity, earnings over time, recent errors) as operator routes. */
  history?: OperatorHistoryService;
  /** More routes on the same port (the dashboard's page and files). */
  extraRoutes?: readonly Route<never>[];
  /** Who else may use the operator routes (ApiServerOptions.operatorAccess). */
  operatorAccess?: OperatorAccess;
}

/** The provider's API server: the §3.2 routes, the log WebSocket and the lease access routes, on one port. */
export function createProviderApi(options: ProviderApiOptions): ApiServer {
  const log = options.log.child({ module: 'api' });
  const logs = new LogStreamServer({
    service: options.service,
    authenticator: options.authenticator,
    log,
    ...(options.logHighWaterMarkBytes === undefined ? {} : { highWaterMarkBytes: options.logHighWaterMarkBytes }),
  });
  const routes: Route<never>[] = [
    ...providerRoutes({ service: options.service, metrics: options.metrics, ...(options.limiter ? { limiter: options.limiter } : {}) }),
    ...(options.history ? operatorHistoryRoutes(options.history) : []),
    ...(options.extraRoutes ?? []),
  ];
  const common: Omit<ApiServerOptions, 'routes' | 'upgrade'> = {
    authenticator: options.authenticator,
    maxBodyBytes: options.maxBodyBytes,
    log,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.operatorAccess ? { operatorAccess: options.operatorAccess } : {}),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  };
  const access = options.access;
  if (!access) return new ApiServer({ ...common, routes, upgrade: logs });
  const accessLog = log.child({ component: 'lease-access' });
  const tokens = new AccessTokens({ store: access.tokens, directory: access.directory, settings: access.settings, clock: access.clock });
  const door = new LeaseDoor({ authenticator: options.authenticator, tokens, directory: access.directory });
  const connections = new PerLeaseSlots(() => access.settings().proxy.maxConnectionsPerLease);
  const exec = new ExecServer({
    authenticator: options.authenticator,
    directory: access.directory,
    backend: access.backend,
    audit: access.audit,
    ...(options.limiter ? { limiter: options.limiter } : {}),
    settings: access.settings,
    clock: access.clock,
    log: accessLog,
  });
  const proxy = new PortProxy({ door, backend: access.backend, connections, settings: access.settings, log: accessLog });
  const tunnels = new TunnelServer({ door, backend: access.backend, connections, settings: access.settings, log: accessLog });
  const upgrade = new UpgradeRouter(
    [
      { pattern: EXEC_PATH, handler: exec },
      { pattern: TUNNEL_PATH, handler: tunnels },
      { pattern: PORTS_PATH, handler: proxy },
    ],
    logs,
  );
  return new ApiServer({
    ...common,
    routes: [...routes, ...accessTokenRoutes(tokens)],
    upgrade,
    passthrough: proxy,
  });
}

/**
 * The operator's door: plain HTTP on loopback for the commands on the provider machine, which
 * hold no pin. Every route but the tenants' (their requests carry manifests and must travel in
 * TLS); no log WebSocket (operators follow logs over NDJSON).
 */
export function createOperatorApi(options: Pick<ProviderApiOptions, 'service' | 'metrics' | 'maxBodyBytes' | 'log' | 'requestTimeoutMs' | 'history' | 'extraRoutes' | 'operatorAccess'>): ApiServer {
  const routes = [
    ...providerRoutes({ service: options.service, metrics: options.metrics }).filter((route) => route.auth !== 'tenant'),
    ...(options.history ? operatorHistoryRoutes(options.history) : []),
    ...(options.extraRoutes ?? []),
  ];
  return new ApiServer({
    routes,
    authenticator: undefined,
    maxBodyBytes: options.maxBodyBytes,
    log: options.log.child({ module: 'operator-api' }),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    // Every peer here is this machine; the access still refuses a Host that is a name (DNS rebinding).
    ...(options.operatorAccess ? { operatorAccess: options.operatorAccess } : {}),
  });
}
