import { request, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import { portParam, type AccessSettings, type PerLeaseSlots, type WorkloadDoor } from './lease-access';
import { cookiesOf, tokenCookieName, TOKEN_QUERY, type DoorPass, type LeaseDoor } from './lease-door';
import { param } from './routes';
import { decodeSegment, errorResponse, readBody, refuseUpgrade, requestUrl, toJson, type RequestPassthrough, type UpgradeHandler } from './server';
import { AUTH_HEADERS } from './tenant-auth';
import { leaseIdParam } from './wire';

export const PORTS_PATH = /^\/v1\/leases\/([^/]+)\/ports\/([^/]+)(\/.*)?$/;

/** Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus the proxy's own credentials. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

export interface PortProxyOptions {
  door: LeaseDoor;
  backend: WorkloadDoor;
  /** Websockets through the proxy and tunnels, per lease. */
  connections: PerLeaseSlots;
  settings: () => AccessSettings;
  log: Logger;
}

/**
 * /v1/leases/:id/ports/:port/<path>: HTTP to the lease's published port, reverse-proxied on the
 * API port, websockets included. It connects to one place only: the lease container's address on
 * its own lease network (asked of the backend each time) and a port the manifest published. The
 * lease sees the path below the prefix (and `x-forwarded-prefix`), none of the tenant's credentials.
 */
export class PortProxy implements RequestPassthrough, UpgradeHandler {
  private readonly inFlight = new Set<{ destroy(): void }>();
  private closing = false;

  constructor(private readonly options: PortProxyOptions) {}

  handles(req: IncomingMessage): boolean {
    return PORTS_PATH.test((req.url ?? '/').split('?', 1)[0] ?? '/');
  }

  serve(req: IncomingMessage, res: ServerResponse): void {
    void this.proxy(req, res).catch((err: unknown) => this.fail(res, err));
  }

  private async proxy(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.closing) throw new ProviderError('OPERATION_ABORTED', 'the daemon is shutting down');
    const { url, leaseId, port, rest } = target(req);
    if (rest === undefined) {
      // Relative links of the page resolve against its directory: the port's root needs its slash.
      res.writeHead(308, { location: `${url.pathname}/${url.search}`, 'content-length': 0 });
      res.end();
      return;
    }
    const settings = this.options.settings().proxy;
    const body = await readBody(req, settings.maxRequestBodyBytes, `send at most ${settings.maxRequestBodyBytes} bytes to a lease's port (access.proxy.maxRequestBodyBytes)`);
    const pass = this.options.door.admit(req, url, body, leaseId, port);
    if (pass.tokenFromQuery && (req.method === 'GET' || req.method === 'HEAD')) {
      // The token leaves the URL (history, Referer, the lease's logs) for a cookie on the lease's path.
      res.writeHead(303, { location: withoutToken(url).pathname + withoutToken(url).search, 'set-cookie': tokenCookie(pass), 'content-length': 0 });
      res.end();
      return;
    }
    const address = await this.options.backend.address(pass.lease.runtimeId, { signal: AbortSignal.timeout(settings.connectTimeoutMs) });
    const upstream = request({
      host: address,
      port: pass.port,
      method: req.method,
      path: rest + withoutToken(url).search,
      headers: { ...forwardedHeaders(req, pass), 'content-length': body.length },
      timeout: settings.connectTimeoutMs,
    });
    this.inFlight.add(upstream);
    res.once('close', () => {
      this.inFlight.delete(upstream);
      if (!res.writableFinished) upstream.destroy();
    });
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ProviderError('UPSTREAM_TIMEOUT', `port ${pass.port} of lease ${pass.lease.leaseId} sent no answer within ${settings.responseTimeoutMs} ms`)), settings.responseTimeoutMs);
      upstream.once('response', (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      upstream.once('error', (err) => {
        clearTimeout(timer);
        reject(unreachable(pass, err));
      });
      upstream.once('timeout', () => upstream.destroy(new Error(`no connection within ${settings.connectTimeoutMs} ms`)));
    });
    upstream.end(body);
    let answer: IncomingMessage;
    try {
      answer = await answered;
    } catch (err) {
      upstream.destroy();
      throw err;
    }
    const headers: OutgoingHttpHeaders = stripHopByHop(answer.headers);
    if (pass.tokenFromQuery) headers['set-cookie'] = [...toArray(headers['set-cookie']), tokenCookie(pass)];
    res.writeHead(answer.statusCode ?? 502, headers);
    // The upstream socket is kept alive across requests: the idle timer's listener goes with this answer.
    const socket = answer.socket;
    const idle = (): void => void answer.destroy();
    socket.setTimeout(settings.idleTimeoutMs);
    socket.once('timeout', idle);
    answer.once('close', () => {
      socket.off('timeout', idle);
      socket.setTimeout(0);
    });
    answer.pipe(res);
    answer.once('error', () => res.destroy());
  }

  private fail(res: ServerResponse, err: unknown): void {
    const { status, body } = errorResponse(err);
    if (status >= 500 && status !== 502 && status !== 504) this.options.log.error({ err }, 'port proxy failed');
    else this.options.log.info({ status, code: body.error.code }, 'port request refused');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const text = toJson(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    void this.upgrade(req, socket as Socket, head).catch((err: unknown) => {
      this.options.log.info({ code: errorResponse(err).body.error.code }, 'proxied websocket refused');
      refuseUpgrade(socket, err);
    });
  }

  /** A websocket (any upgrade) to the lease's port: the handshake forwarded, then bytes both ways. */
  private async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    if (this.closing) throw new ProviderError('OPERATION_ABORTED', 'the daemon is shutting down');
    const { url, leaseId, port, rest } = target(req);
    const pass = this.options.door.admit(req, url, Buffer.alloc(0), leaseId, port);
    const settings = this.options.settings().proxy;
    if (!this.options.connections.take(pass.lease.leaseId)) throw tooManyConnections(pass.lease.leaseId, settings.maxConnectionsPerLease);
    let released = false;
    const release = (): void => {
      if (!released) this.options.connections.release(pass.lease.leaseId);
      released = true;
    };
    try {
      const address = await this.options.backend.address(pass.lease.runtimeId, { signal: AbortSignal.timeout(settings.connectTimeoutMs) });
      const headers = forwardedHeaders(req, pass);
      headers.connection = 'upgrade';
      headers.upgrade = req.headers.upgrade ?? 'websocket';
      const upstream = request({ host: address, port: pass.port, method: 'GET', path: (rest ?? '/') + withoutToken(url).search, headers, timeout: settings.connectTimeoutMs });
      upstream.end();
      const outcome = await new Promise<{ res: IncomingMessage; socket?: Socket; head?: Buffer }>((resolve, reject) => {
        upstream.once('upgrade', (res, upSocket: Socket, upHead: Buffer) => resolve({ res, socket: upSocket, head: upHead }));
        upstream.once('response', (res) => resolve({ res }));
        upstream.once('error', (err) => reject(unreachable(pass, err)));
        upstream.once('timeout', () => upstream.destroy(new Error('no connection in time')));
      });
      const status = outcome.res.statusCode ?? 502;
      const lines = [`HTTP/1.1 ${status} ${outcome.res.statusMessage ?? ''}`];
      for (let i = 0; i < outcome.res.rawHeaders.length; i += 2) lines.push(`${outcome.res.rawHeaders[i] ?? ''}: ${outcome.res.rawHeaders[i + 1] ?? ''}`);
      if (!outcome.socket) {
        // Refused by the lease's server: its answer goes back as it is, and the connection ends.
        socket.write(`${lines.join('\r\n')}\r\n\r\n`);
        outcome.res.pipe(socket);
        outcome.res.once('end', release);
        return;
      }
      const up = outcome.socket;
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (outcome.head && outcome.head.length > 0) socket.write(outcome.head);
      if (head.length > 0) up.write(head);
      this.splice(socket, up, settings.idleTimeoutMs, release);
    } catch (err) {
      release();
      throw err;
    }
  }

  /** Bytes both ways until either side ends or both idle past the bound. */
  private splice(a: Socket, b: Socket, idleMs: number, onEnd: () => void): void {
    const entry = { destroy: () => (a.destroy(), b.destroy()) };
    this.inFlight.add(entry);
    a.pipe(b);
    b.pipe(a);
    for (const s of [a, b]) {
      s.setTimeout(idleMs, () => entry.destroy());
      s.once('error', () => entry.destroy());
      s.once('close', () => {
        entry.destroy();
        this.inFlight.delete(entry);
        onEnd();
      });
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const entry of this.inFlight) entry.destroy();
    this.inFlight.clear();
  }
}

function target(req: IncomingMessage): { url: URL; leaseId: string; port: number; rest: string | undefined } {
  const url = requestUrl(req);
  const match = PORTS_PATH.exec(url.pathname);
  if (!match) throw new ProviderError('ROUTE_NOT_FOUND', `no route ${url.pathname}`);
  const leaseId = param(leaseIdParam, decodeSegment(match[1] ?? '', 'id'), 'id');
  const port = param(portParam, decodeSegment(match[2] ?? '', 'port'), 'port');
  return { url, leaseId, port, rest: match[3] };
}

function unreachable(pass: DoorPass, err: Error): ProviderError {
  return new ProviderError('UPSTREAM_UNREACHABLE', `port ${pass.port} of lease ${pass.lease.leaseId} did not answer: ${err.message}`, {
    fix: 'check that the lease\'s service listens on that port on all its addresses (0.0.0.0), not only on 127.0.0.1',
  });
}

export function tooManyConnections(leaseId: string, max: number): ProviderError {
  return new ProviderError('RATE_LIMITED', `lease ${leaseId} has ${max} tunnels and proxied websockets open, the most it may`, { fix: 'close one first' });
}

function withoutToken(url: URL): URL {
  const clean = new URL(url.href);
  clean.searchParams.delete(TOKEN_QUERY);
  return clean;
}

function tokenCookie(pass: DoorPass): string {
  return `${tokenCookieName(pass.lease.leaseId)}=${pass.tokenFromQuery ?? ''}; Path=/v1/leases/${pass.lease.leaseId}/; HttpOnly; SameSite=Lax`;
}

/** The request's headers as the lease's server may see them: no hop-by-hop ones, none of the tenant's credentials. */
export function forwardedHeaders(req: IncomingMessage, pass: DoorPass): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = stripHopByHop(req.headers);
  for (const name of Object.values(AUTH_HEADERS)) delete headers[name];
  if (pass.via === 'token' && /^Bearer\s/i.test(req.headers.authorization ?? '')) delete headers.authorization;
  const ours = tokenCookieName(pass.lease.leaseId);
  const kept = [...cookiesOf(req.headers.cookie)].filter(([name]) => !name.startsWith('provider_lease_') && name !== ours);
  if (kept.length > 0) headers.cookie = kept.map(([k, v]) => `${k}=${v}`).join('; ');
  else delete headers.cookie;
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  headers['x-forwarded-host'] = req.headers.host ?? '';
  headers['x-forwarded-proto'] = 'encrypted' in req.socket ? 'https' : 'http';
  headers['x-forwarded-prefix'] = `/v1/leases/${pass.lease.leaseId}/ports/${pass.port}`;
  return headers;
}

function stripHopByHop(source: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = String(source.connection ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined || HOP_BY_HOP.includes(name) || named.includes(name)) continue;
    headers[name] = value;
  }
  return headers;
}

function toArray(value: OutgoingHttpHeaders[string]): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value.map(String) : [String(value)];
}
