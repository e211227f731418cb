import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  HTTP_STATUS,
  localApiUrl,
  wire,
  type DaemonStatus,
  type EarningsView,
  type LogEntry,
  type LogQuery,
  type OperatorLeaseDetail,
  type OperatorLeaseSummary,
  type WithdrawResult,
} from '../api';
import type { ProviderConfig } from '../config';
import { Devnet } from '../devnet';
import { ProviderError, isProviderError, type ErrorCode } from '../errors';
import type { Logger } from '../log';
import { openStoreReadOnly, storePathFor, type Store } from '../store';

export interface OperatorClientOptions {
  /** localApiUrl(config). */
  baseUrl: string;
  /** Per request; a daemon that takes longer is DAEMON_UNRESPONSIVE, not down. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/**
 * The operator routes of the local daemon, typed. Nothing listening is DAEMON_NOT_RUNNING (the
 * caller may read the store instead); an error body from the daemon becomes a ProviderError with
 * the daemon's code, message and fix; every answer is decoded through its wire schema.
 */
export class OperatorClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly options: OperatorClientOptions) {
    this.fetch = options.fetch ?? fetch;
  }

  /** The daemon this config runs, as commands on its machine reach it. */
  static forConfig(config: Pick<ProviderConfig, 'api'>): OperatorClient {
    return new OperatorClient({ baseUrl: localApiUrl(config) });
  }

  get baseUrl(): string {
    return this.options.baseUrl;
  }

  status(): Promise<DaemonStatus> {
    return this.call('GET', '/v1/status', wire.daemonStatusWire);
  }

  async leases(): Promise<OperatorLeaseSummary[]> {
    return (await this.call('GET', '/v1/operator/leases', wire.operatorLeasesWire)).leases;
  }

  lease(leaseId: string): Promise<OperatorLeaseDetail> {
    return this.call('GET', `/v1/operator/leases/${encodeURIComponent(leaseId)}`, wire.operatorLeaseDetailWire);
  }

  earnings(): Promise<EarningsView> {
    return this.call('GET', '/v1/operator/earnings', wire.earningsWire);
  }

  /** Waits up to `waitSeconds` on the daemon's side for the transaction, and a little longer here. */
  withdraw(waitSeconds: number): Promise<WithdrawResult> {
    return this.call('POST', '/v1/operator/withdraw', wire.withdrawResultWire, { waitSeconds }, waitSeconds * 1000 + 10_000);
  }

  /**
   * The lease's log lines as they come (NDJSON). Ends at the daemon's end-of-log line; its error
   * or shutdown line is thrown as a ProviderError.
   */
  async *logs(leaseId: string, query: LogQuery, signal?: AbortSignal): AsyncIterable<LogEntry> {
    const search = new URLSearchParams({ follow: query.follow ? '1' : '0' });
    if (query.tail !== undefined) search.set('tail', String(query.tail));
    if (query.since !== undefined) search.set('since', String(query.since));
    const path = `/v1/operator/leases/${encodeURIComponent(leaseId)}/logs?${search}`;
    // Only the answer's start is timed: a follow runs as long as the container does.
    const connect = new AbortController();
    const timer = setTimeout(() => connect.abort(new Error('timeout')), this.timeoutMs());
    const res = await this.request('GET', path, undefined, signal ? AbortSignal.any([signal, connect.signal]) : connect.signal).finally(() => clearTimeout(timer));
    if (!res.ok) throw await daemonError(res, path);
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim() === '') continue;
        const message = decode(wire.logMessageWire, parseJson(line, path), path);
        if (!('end' in message)) {
          yield message;
          continue;
        }
        if (message.reason === 'error') {
          const code = message.error?.code ?? 'INTERNAL';
          throw new ProviderError(knownCode(code) ?? 'PROVIDER_REFUSED', `the log stream of lease ${leaseId} failed: ${message.error?.message ?? code}`);
        }
        if (message.reason === 'shutdown') throw new ProviderError('OPERATION_ABORTED', `the daemon is shutting down: the log stream of lease ${leaseId} ended`);
        return;
      }
    }
  }

  private timeoutMs(): number {
    return this.options.timeoutMs ?? 10_000;
  }

  private async call<T>(method: 'GET' | 'POST', path: string, schema: z.ZodType<T, unknown>, body?: unknown, timeoutMs = this.timeoutMs()): Promise<T> {
    const res = await this.request(method, path, body, AbortSignal.timeout(timeoutMs));
    if (!res.ok) throw await daemonError(res, path);
    return decode(schema, parseJson(await res.text(), path), path);
  }

  private async request(method: 'GET' | 'POST', path: string, body: unknown, signal: AbortSignal): Promise<Response> {
    const url = `${this.options.baseUrl}${path}`;
    try {
      return await this.fetch(url, {
        method,
        signal,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      });
    } catch (err) {
      if (refused(err)) {
        throw new ProviderError('DAEMON_NOT_RUNNING', `the daemon is not running: nothing answers at ${this.options.baseUrl}`, {
          cause: err,
          fix: 'start it with `provider start` (with the same config), or check api.host and api.port',
        });
      }
      if (signal.aborted) {
        throw new ProviderError('DAEMON_UNRESPONSIVE', `the daemon at ${this.options.baseUrl} did not answer ${method} ${path.split('?')[0]} in time`, {
          cause: err,
          fix: 'look at the daemon\'s log (journalctl -u provider, or its terminal); it may be stuck on Docker or the chain',
        });
      }
      throw new ProviderError('DAEMON_UNRESPONSIVE', `${method} ${url}: ${(err as Error).message}`, { cause: err, fix: 'check api.host and api.port' });
    }
  }
}

/** True for "nothing listens there": the one failure that means the daemon is down. */
function refused(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string; errors?: { code?: string }[] } }).cause;
  if (!cause) return false;
  if (cause.code === 'ECONNREFUSED') return true;
  // Several addresses tried (localhost as ::1 and 127.0.0.1): refused by all of them.
  return Array.isArray(cause.errors) && cause.errors.length > 0 && cause.errors.every((e) => e.code === 'ECONNREFUSED');
}

async function daemonError(res: Response, path: string): Promise<ProviderError> {
  const text = await res.text().catch(() => '');
  const error = wire.decodeErrorBody(text);
  if (!error) return new ProviderError('PROVIDER_RESPONSE_INVALID', `${path.split('?')[0]}: HTTP ${res.status}: ${text.slice(0, 200)}`);
  const { code, message, fix } = error;
  // A code this CLI does not know (a newer daemon) keeps its text in the message.
  const known = knownCode(code);
  return new ProviderError(known ?? 'PROVIDER_REFUSED', known ? message : `${code}: ${message}`, fix ? { fix } : {});
}

/** The daemon's error code as this version's ErrorCode (the status table lists every one). */
function knownCode(code: string): ErrorCode | undefined {
  return Object.hasOwn(HTTP_STATUS, code) ? (code as ErrorCode) : undefined;
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ProviderError('PROVIDER_RESPONSE_INVALID', `${path.split('?')[0]}: the daemon's answer is not JSON`);
  }
}

function decode<T>(schema: z.ZodType<T, unknown>, json: unknown, path: string): T {
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new ProviderError('PROVIDER_RESPONSE_INVALID', `${path.split('?')[0]}: ${issue ? `${issue.path.join('.') || '(body)'}: ${issue.message}` : 'invalid'}`, {
    fix: 'run the same version of provider as the daemon',
  });
}

/**
 * Asks the daemon; when it is not running (and only then) answers from `offline` instead. Any
 * other failure (a refusal, a daemon that hangs) is the caller's: reading the store behind a
 * running daemon's back would hide it.
 */
export async function fromDaemonOrStore<T>(
  daemon: () => Promise<T>,
  offline: (down: ProviderError) => T | Promise<T>,
): Promise<{ source: 'daemon' | 'store'; value: T }> {
  try {
    return { source: 'daemon', value: await daemon() };
  } catch (err) {
    if (!isProviderError(err, 'DAEMON_NOT_RUNNING')) throw err;
    return { source: 'store', value: await offline(err) };
  }
}

export interface DaemonStore {
  path: string;
  chainId: number;
  marketplace: string;
  store: Store;
  close(): void;
}

const deploymentWire = z.object({ chainId: z.number().int(), marketplaceAddress: z.string() });

/**
 * The store of the daemon this config runs, for commands while it is down: on a configured
 * network, named by its chain id and marketplace; on the devnet, by the marketplace the devnet
 * deployed (recorded in <dataDir>/devnet/deployment.json).
 */
export function openDaemonStore(config: ProviderConfig, log: Logger): DaemonStore {
  const { chainId, marketplace } = daemonMarketplace(config, log);
  const path = storePathFor(config.dataDir, chainId, marketplace);
  // openStore would create an empty one: a missing file means the daemon never ran here.
  if (!existsSync(path)) throw noStore(config.dataDir);
  // Read-only: "nothing answers" may also mean the daemon is still starting up and owns the file.
  const store = openStoreReadOnly(path);
  return { path, chainId, marketplace, store, close: () => store.close() };
}

/** The chain and marketplace the daemon of this config works on (on the devnet, as it deployed it). */
export function daemonMarketplace(config: ProviderConfig, log: Logger): { chainId: number; marketplace: string } {
  if (config.network) return { chainId: config.network.chainId, marketplace: config.network.marketplaceAddress };
  const recorded = devnetDeployment(config, log);
  if (!recorded) throw noStore(config.dataDir);
  return { chainId: config.devnet.chainId, marketplace: recorded.marketplaceAddress };
}

/** The marketplace the devnet of this config deployed (<dataDir>/devnet/deployment.json); undefined before its first start. */
export function devnetDeployment(config: ProviderConfig, log: Logger): z.output<typeof deploymentWire> | undefined {
  const deployment = new Devnet({ dataDir: config.dataDir, ...config.devnet, log }).deploymentPath;
  try {
    return deploymentWire.parse(JSON.parse(readFileSync(deployment, 'utf8')));
  } catch {
    return undefined;
  }
}

/** Runs `read` on the stopped daemon's store, closing it after. */
export function readDaemonStore<T>(config: ProviderConfig, log: Logger, read: (store: DaemonStore) => T): T {
  const opened = openDaemonStore(config, log);
  try {
    return read(opened);
  } finally {
    opened.close();
  }
}

function noStore(dataDir: string): ProviderError {
  return new ProviderError('STORE_NOT_FOUND', `no store under ${dataDir}: the daemon has not run with this config`, {
    input: dataDir,
    fix: 'start the daemon once with `provider start` (and this config), or pass the config or --data-dir it runs with',
  });
}
