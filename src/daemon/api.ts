import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProviderMetrics, RequestRateLimiter, TenantAuthenticator, createOperatorApi, createProviderApi, operatorPortOf, type ApiServer, type GpuHealthStatusView, type ProviderService, type WorkloadDoor } from '../api';
import type { AllocationLedger, CapacityReport } from '../capacity';
import { TenantFunding, payableTo, providerAccount, tokenAt, type ChainClient } from '../chain';
import type { ProviderConfig } from '../config';
import { DashboardAccess, dashboardRoutes } from '../dashboard';
import { ProviderError, describeError } from '../errors';
import type { LeaseState } from '../leases';
import type { Logger } from '../log';
import { diskSpace } from '../runtime';
import { isPaymentKey } from '../settlement';
import type { Store } from '../store';
import type { Clock } from '../util/clock';
import { StoreLeaseDirectory } from './lease-directory';
import { StoreOperatorHistory } from './operator-history';
import { runningGpuReadings, storeEarnings } from './operator-views';
import { withTimeout } from '../util/with-timeout';

export interface RunningApi {
  address: AddressInfo;
  /** The plain-HTTP operator listener on loopback. */
  operatorAddress: AddressInfo;
  /** Serves a connection that came another way (the relay tunnel), as if it arrived on the port. */
  accept(stream: Duplex): void;
  metrics: ProviderMetrics;
  /** Serves a renewed certificate to new connections. */
  setCertificate(tls: { cert: string; key: string }): void;
  close(): Promise<void>;
}

export interface StartApiOptions {
  config: ProviderConfig;
  service: ProviderService;
  store: Store;
  ledger: AllocationLedger;
  /** What runs the leases: shells and the lease ports go through it. */
  backend: WorkloadDoor;
  /** The capacity found at start (the dashboard's GPU list); without it, the free GPUs only. */
  report?: CapacityReport;
  chain: ChainClient;
  provider: string;
  clock: Clock;
  log: Logger;
  /** The certificate of the public port; absent with api.tls.enabled false (plain HTTP). */
  tls?: { cert: string; key: string };
  /** Each GPU's health, for /metrics. */
  gpuHealth?: () => GpuHealthStatusView[];
  version: string;
  /** The engine's data root, for its free space (ImageService.dataRoot). */
  dockerRoot: () => Promise<string>;
  /** The wall-clock unix second until which a live lease's unpaid usage can be claimed in full (Settler.claimDeadline). */
  claimDeadline: (leaseId: string) => number | undefined;
}

/** How often the Prometheus figures are refreshed from the store, the ledger and the chain. */
const METRICS_REFRESH_MS = 5_000;
/** A status check that hangs says the RPC is down (the Docker ping inside it has its own, shorter bound). */
const REACHABILITY_TIMEOUT_MS = 4_000;

/**
 * The provider API on api.host:api.port: routes, log WebSocket, /metrics. Tenant request nonces
 * are kept in the store, so a request captured before a restart cannot be replayed after it.
 */
export async function startApi(options: StartApiOptions): Promise<RunningApi> {
  const { config, store, clock, log } = options;
  const authenticator = new TenantAuthenticator({
    chainId: options.chain.settings.chainId,
    maxSignatureAgeSeconds: config.api.maxSignatureAgeSeconds,
    clock,
    nonces: store.nonceLedger(() => Math.floor(clock.now() / 1000)),
  });
  const metrics = new ProviderMetrics({ version: options.version });
  const limiter = new RequestRateLimiter(config.admission.rateLimit, clock, (action, scope) => metrics.requestRateLimited(action, scope));
  // Sessions the last run left open ended with it (their processes got a hangup when the daemon's connection went).
  const interrupted = store.execSessions.closeInterrupted(Math.floor(clock.now() / 1000));
  if (interrupted > 0) log.info({ sessions: interrupted }, 'shell sessions of the last run recorded as interrupted');
  const access = {
    directory: new StoreLeaseDirectory(store),
    backend: options.backend,
    audit: store.execSessions,
    tokens: store.accessTokens,
    settings: () => config.access,
    clock,
  };
  const history = new StoreOperatorHistory({ store, ledger: options.ledger, ...(options.report ? { report: options.report } : {}), ...(options.gpuHealth ? { gpuHealth: options.gpuHealth } : {}) });
  const dashboard = config.dashboard.enabled ? dashboardRoutes({ log: log.child({ component: 'dashboard' }) }) : [];
  const operatorAccess = new DashboardAccess({ password: config.dashboard.enabled ? config.dashboard.password : undefined });
  const server = createProviderApi({
    service: options.service,
    metrics,
    limiter,
    authenticator,
    maxBodyBytes: config.api.maxBodyBytes,
    log,
    access,
    history,
    extraRoutes: dashboard,
    operatorAccess,
    ...(options.tls ? { tls: options.tls } : {}),
  });
  const address = await listenOrExplain(server, config.api.host, config.api.port, 'api.port');
  const operator = createOperatorApi({ service: options.service, metrics, maxBodyBytes: config.api.maxBodyBytes, log, history, extraRoutes: dashboard, operatorAccess });
  // Loopback only: this listener has no TLS and answers operator routes without credentials.
  const operatorAddress = await listenOrExplain(operator, '127.0.0.1', operatorPortOf(config), 'api.operatorPort').catch(async (err: unknown) => {
    await server.close();
    throw err;
  });
  let refreshing: Promise<void> | undefined;
  // One refresh at a time: a slow chain must not pile them up.
  const refresh = (): Promise<void> =>
    (refreshing ??= refreshMetrics(metrics, options)
      .catch((err: unknown) => log.debug({ err: describeError(err) }, 'metrics refresh failed'))
      .finally(() => {
        refreshing = undefined;
      }));
  await refresh();
  const timer = setInterval(() => void refresh(), METRICS_REFRESH_MS);
  timer.unref();
  return {
    address,
    operatorAddress,
    accept: (stream) => server.accept(stream),
    metrics,
    setCertificate: (tls) => server.setCertificate(tls),
    close: async () => {
      clearInterval(timer);
      await Promise.all([server.close(), operator.close()]);
    },
  };
}

async function listenOrExplain(server: ApiServer, host: string, port: number, key: string): Promise<AddressInfo> {
  return server.listen(host, port).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw err;
    const why = code === 'EADDRINUSE' ? 'the port is in use' : code === 'EACCES' ? 'permission denied' : 'no such local address';
    throw new ProviderError('PORT_UNAVAILABLE', `the API cannot listen on ${host}:${port}: ${why}`, {
      cause: err,
      fix:
        code === 'EADDRINUSE'
          ? `stop what listens there (\`ss -ltnp 'sport = :${port}'\` names it; another provider daemon?) or set ${key}`
          : 'set api.host to an address of this machine (0.0.0.0 for all) and api.port to 1024 or above unless running as root',
    });
  });
}

/** Store and ledger figures first, then the checks that wait on Docker and the chain, so a dead RPC leaves the rest current. */
async function refreshMetrics(metrics: ProviderMetrics, options: StartApiOptions): Promise<void> {
  const { store, ledger, chain, provider, clock, config } = options;
  metrics.setLeases(store.leases.countByState() as Partial<Record<LeaseState, number>>);
  if (options.gpuHealth) metrics.setGpuHealth(options.gpuHealth());
  const free = ledger.free();
  const held = ledger.list();
  const allocated = {
    cpuMillis: held.reduce((s, a) => s + a.cpuMillis, 0),
    memoryBytes: held.reduce((s, a) => s + a.memoryBytes, 0),
    gpus: held.reduce((s, a) => s + a.gpuUuids.length, 0),
  };
  metrics.setCapacity(
    { cpuMillis: free.cpuMillis + allocated.cpuMillis, memoryBytes: free.memoryBytes + allocated.memoryBytes, gpus: free.gpus.length + allocated.gpus },
    allocated,
  );
  let lag = 0;
  const now = Math.floor(clock.now() / 1000);
  for (const lease of store.leases.list({ states: ['running'] })) {
    if (lease.timeline) lag = Math.max(lag, now - lease.timeline.boundary);
  }
  metrics.setMeteringLag(lag);
  metrics.setGpuReadings(runningGpuReadings(store));
  metrics.setEarned(earnedTotal(store));
  let deadline: number | undefined;
  for (const lease of store.leases.list({ states: ['running', 'settling'] })) {
    const at = options.claimDeadline(lease.leaseId);
    if (at !== undefined && (deadline === undefined || at < deadline)) deadline = at;
  }
  metrics.setClaimDeadline(deadline === undefined ? undefined : deadline - now);
  const failures = store.outbox.failed().filter((entry) => isPaymentKey(entry.key));
  reportedFailures(metrics, failures.length, failures.map((f) => f.errorCode ?? 'TX_REVERTED'));
  metrics.setDisk('data_dir', await diskSpace(config.dataDir).catch(() => undefined));
  const dockerRoot = await withTimeout('asking Docker for its data root', REACHABILITY_TIMEOUT_MS, () => options.dockerRoot()).catch(() => undefined);
  metrics.setDisk('docker_root', dockerRoot === undefined ? undefined : await diskSpace(dockerRoot).catch(() => undefined));
  const status = await withTimeout('status check', REACHABILITY_TIMEOUT_MS, () => options.service.status()).catch(() => undefined);
  metrics.setReachability({ rpc: status?.chain.headBlock != null, docker: status?.docker.reachable ?? false, accepting: status?.accepting ?? false });
  const finalised = (await providerAccount(chain.marketplace, provider)).earnings;
  // Claimed and withdrawn as the operator's earnings view counts them, so the two never disagree.
  const { claimedPending, withdrawn } = storeEarnings(store);
  metrics.setEarnings({ claimed: claimedPending, finalised, withdrawn });
}

/** Every lease's latest checkpoint, as much of it as its deposit can pay: what the provider has earned and proven. */
function earnedTotal(store: Store): bigint {
  const leases = store.leases.list();
  const latest = store.checkpoints.summaries(leases.map((l) => l.leaseId));
  let total = 0n;
  for (const lease of leases) {
    const last = latest.get(lease.leaseId)?.latest;
    if (last) total += payableTo(last.cumulativeAmount, lease.deposit);
  }
  return total;
}

const seenFailures = new WeakMap<ProviderMetrics, number>();

function reportedFailures(metrics: ProviderMetrics, total: number, codes: string[]): void {
  const seen = seenFailures.get(metrics) ?? 0;
  for (const code of codes.slice(seen)) metrics.claimFailed(code);
  seenFailures.set(metrics, Math.max(seen, total));
}

/**
 * The funding check of quotes, on the token the marketplace takes deposits in (its own `token()`,
 * whatever the config names) and the allowance to that marketplace.
 */
export async function tenantFunding(chain: ChainClient, config: ProviderConfig, clock: Clock): Promise<TenantFunding> {
  const token = tokenAt(await chain.marketplace.read('token', []), chain.rpc);
  return new TenantFunding({ token, marketplace: chain.settings.marketplaceAddress, clock, cacheMs: config.admission.fundingCacheSeconds * 1000 });
}
