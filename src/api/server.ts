import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { z } from 'zod';
import { isProviderError, ProviderError } from '../errors';
import type { Logger } from '../log';
import { HTTP_STATUS } from './http-status';
import type { TenantAuthenticator } from './tenant-auth';

export interface RouteContext<Body> {
  params: Record<string, string>;
  query: URLSearchParams;
  body: Body;
  /** The tenant's checksummed address, on routes with `auth: 'tenant'`. */
  tenant: string | undefined;
  /** The peer's address as the socket sees it (no proxy headers are trusted). */
  remoteAddress: string | undefined;
  /** Aborted when the client goes away before the response ends, or the server closes. */
  signal: AbortSignal;
  log: Logger;
}

export interface RouteResult {
  status?: number;
  /** Serialised as JSON; bigint values become decimal strings. */
  json?: unknown;
  text?: string;
  /** Written chunk by chunk as it comes (NDJSON log lines); ends the response when it ends. */
  stream?: AsyncIterable<string>;
  contentType?: string;
  /** More response headers (cache-control, content-security-policy): static files set them. */
  headers?: Record<string, string>;
}

export interface Route<Body = unknown> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** `/v1/leases/:id`: a `:name` segment matches one path segment. */
  path: string;
  /**
   * tenant: a signed request (tenant-auth.ts); none: anyone; operator: only the operator's own
   * machine (`curl localhost:8421/v1/status` on the operator listener), with no credentials to manage: a loopback peer, or
   * one whose address is this host's own (the API bound to one address only).
   */
  auth: 'tenant' | 'none' | 'operator';
  body?: z.ZodType<Body>;
  handler(ctx: RouteContext<Body>): Promise<RouteResult> | RouteResult;
}

export interface ApiServerOptions {
  routes: readonly Route<never>[];
  authenticator: TenantAuthenticator | undefined;
  maxBodyBytes: number;
  log: Logger;
  /** Whole-request deadline; slow clients must not hold sockets forever. */
  requestTimeoutMs?: number;
  /** Takes HTTP upgrade requests (the WebSocket log stream); without it they are refused. */
  upgrade?: UpgradeHandler;
  /** Takes the requests it claims before they are read (a lease's port, proxied); the routes get the rest. */
  passthrough?: RequestPassthrough;
  /** This host's interface addresses; default os.networkInterfaces(), read at each operator request. */
  ownAddresses?: () => NodeJS.Dict<{ address: string }[]>;
  /** Serve HTTPS (and WSS) with this PEM certificate and key; without it, plain HTTP. */
  tls?: { cert: string; key: string };
  /** Decides operator requests beyond "the peer is this machine"; without it, that alone decides. */
  operatorAccess?: OperatorAccess;
}

/**
 * The operator routes' door. `local`: the peer is this machine. Returns whether the request may
 * pass; throws a ProviderError to refuse it with a reason of its own (a password to give).
 */
export interface OperatorAccess {
  admit(req: IncomingMessage, method: Route['method'], local: boolean): boolean;
}

/** Serves upgrade requests on the API's own port (ws with `noServer`). */
export interface UpgradeHandler {
  /** Owns `socket` from here: answers the upgrade, or refuses it with `refuseUpgrade`. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Ends every upgraded connection; ApiServer.close calls it first. */
  close(): Promise<void>;
}

/** Serves some plain requests itself, body unread (a reverse proxy streams and bounds it its own way). */
export interface RequestPassthrough {
  handles(req: IncomingMessage): boolean;
  serve(req: IncomingMessage, res: ServerResponse): void;
}

interface CompiledRoute {
  route: Route<unknown>;
  pattern: RegExp;
  names: string[];
}

export interface ErrorBody {
  error: { code: string; message: string; fix?: string; field?: string };
}

export class ApiServer {
  private readonly server: Server | TlsServer;
  private readonly routes: CompiledRoute[];
  /** Responses still streaming: close() ends them rather than waiting for a follow to end. */
  private readonly streaming = new Set<AbortController>();

  constructor(private readonly options: ApiServerOptions) {
    this.routes = options.routes.map((route) => compile(route as Route<unknown>));
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      if (options.passthrough?.handles(req)) options.passthrough.serve(req, res);
      else void this.handle(req, res);
    };
    this.server = options.tls ? createTlsServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, handler) : createServer(handler);
    // A peer that fails the handshake (a scanner, a tenant refusing our certificate) is nothing to log.
    this.server.on('tlsClientError', (_err: Error, socket: Duplex) => socket.destroy());
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      if (options.upgrade) options.upgrade.handleUpgrade(req, socket, head);
      else refuseUpgrade(socket, new ProviderError('ROUTE_NOT_FOUND', `no upgrade route ${req.url ?? '/'}`));
    });
    this.server.requestTimeout = options.requestTimeoutMs ?? 30_000;
    this.server.headersTimeout = Math.min(this.server.requestTimeout, 15_000);
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Serves `tls` to new connections from now on (a renewed certificate); open ones keep theirs. */
  setCertificate(tls: { cert: string; key: string }): void {
    if (!this.options.tls) throw new ProviderError('INTERNAL', 'this API server speaks plain HTTP');
    (this.server as TlsServer).setSecureContext({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' });
  }

  /**
   * Serves a connection that did not arrive on the listening socket (a relay tunnel's channel):
   * the same routes and WebSocket, and whatever the server speaks on its port. Such a stream has no
   * peer address, so operator routes refuse it, although its bytes come from a process on this
   * machine: a tunnel must never make the internet look like loopback.
   */
  accept(socket: Duplex): void {
    socket.on('error', () => socket.destroy());
    this.server.emit('connection', socket);
  }

  async close(): Promise<void> {
    for (const controller of this.streaming) controller.abort(new ProviderError('OPERATION_ABORTED', 'the daemon is shutting down'));
    await this.options.upgrade?.close();
    this.server.closeIdleConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    let log = this.options.log.child({ method: req.method, path: req.url?.slice(0, 200) });
    try {
      const url = requestUrl(req);
      log = this.options.log.child({ method: req.method, path: url.pathname });
      const { route, params } = this.match(req.method ?? 'GET', url.pathname);
      const raw = await readBody(req, this.options.maxBodyBytes);
      const remoteAddress = req.socket.remoteAddress;
      if (route.auth === 'operator' && !this.admitsOperator(req, route.method)) {
        throw new ProviderError('OPERATOR_ONLY', `${url.pathname} answers only to the provider machine itself`, {
          fix: 'ask from the provider machine itself (curl http://127.0.0.1:<api.operatorPort>/..., default api.port + 1)',
        });
      }
      const tenant = route.auth === 'tenant' ? this.authenticate(req, url, raw) : undefined;
      const body = route.body ? parseBody(route.body, raw) : undefined;
      const controller = new AbortController();
      const gone = (): void => {
        if (!res.writableFinished) controller.abort(new ProviderError('OPERATION_ABORTED', 'client went away'));
      };
      res.once('close', gone);
      this.streaming.add(controller);
      try {
        const result = await route.handler({ params, query: url.searchParams, body, tenant, remoteAddress, signal: controller.signal, log });
        if (result.stream) await pump(res, result.status ?? 200, result, result.stream, controller.signal);
        else send(res, result.status ?? 200, result);
      } finally {
        this.streaming.delete(controller);
        res.off('close', gone);
      }
      log.debug({ status: res.statusCode, ms: Date.now() - started, tenant }, 'request served');
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500) log.error({ err }, 'request failed');
      else log.info({ status, code: body.error.code }, 'request refused');
      // An oversized body is left unread: close the connection rather than drain it all.
      if (status === 413) {
        res.setHeader('connection', 'close');
        lingerBeforeClose(req.socket, OVERSIZE_LINGER_MS);
      }
      if (isProviderError(err) && err.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(err.retryAfterSeconds));
      // The browser asks for the dashboard's password on this challenge, then sends it on every request.
      if (isProviderError(err, 'OPERATOR_AUTH_REQUIRED')) res.setHeader('www-authenticate', 'Basic realm="provider", charset="UTF-8"');
      send(res, status, { json: body });
    }
  }

  private match(method: string, path: string): { route: Route<unknown>; params: Record<string, string> } {
    let pathMatched = false;
    for (const compiled of this.routes) {
      const match = compiled.pattern.exec(path);
      if (!match) continue;
      pathMatched = true;
      if (compiled.route.method !== method) continue;
      const params: Record<string, string> = {};
      compiled.names.forEach((name, i) => {
        params[name] = decodeSegment(match[i + 1] ?? '', name);
      });
      return { route: compiled.route, params };
    }
    if (pathMatched) throw new ProviderError('METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
    throw new ProviderError('ROUTE_NOT_FOUND', `no route ${path}`);
  }

  private admitsOperator(req: IncomingMessage, method: Route['method']): boolean {
    const peer = req.socket.remoteAddress;
    const local = isLoopback(peer) || isOwnAddress(peer, (this.options.ownAddresses ?? networkInterfaces)());
    return this.options.operatorAccess ? this.options.operatorAccess.admit(req, method, local) : local;
  }

  private authenticate(req: IncomingMessage, url: URL, raw: Buffer): string {
    if (!this.options.authenticator) {
      throw new ProviderError('INTERNAL', 'tenant authentication is not configured');
    }
    return this.options.authenticator.authenticate(req.method ?? 'GET', url.pathname + url.search, req.headers, raw);
  }
}

function compile(route: Route<unknown>): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split('/')
    .map((segment) => {
      if (segment.startsWith(':')) {
        names.push(segment.slice(1));
        return '([^/]+)';
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { route, pattern: new RegExp(`^${source}$`), names };
}

/**
 * How long a connection refused for its size keeps discarding what the client still sends. A
 * socket closed with unread input resets, and a reset can discard the 413 the client has not read
 * yet (the client sees ECONNRESET instead of the error and its fix); nginx's lingering close.
 */
const OVERSIZE_LINGER_MS = 2_000;

function lingerBeforeClose(socket: Socket | null, lingerMs: number): void {
  // Null when the client has gone already: nothing is left to read.
  if (!socket) return;
  // Node closes a `connection: close` response's socket with destroySoon() once the reply is
  // written; here it half-closes instead, discards input, and destroys on the client's end or the bound.
  socket.destroySoon = function lingeringClose(this: Socket): void {
    this.end();
    this.resume();
    const timer = setTimeout(() => this.destroy(), lingerMs);
    timer.unref();
    this.once('end', () => {
      clearTimeout(timer);
      this.destroy();
    });
  };
}

/** The request body, refused with REQUEST_TOO_LARGE (and `fix`) past `limit` bytes, declared or sent. */
export async function readBody(req: IncomingMessage, limit: number, fix = `send at most ${limit} bytes`): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) throw tooLarge(limit, fix);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit, fix);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function tooLarge(limit: number, fix: string): ProviderError {
  return new ProviderError('REQUEST_TOO_LARGE', `request body is larger than ${limit} bytes`, { fix });
}

function parseBody<Body>(schema: z.ZodType<Body>, raw: Buffer): Body {
  let value: unknown;
  try {
    value = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ProviderError('REQUEST_INVALID', `body is not valid JSON: ${(err as Error).message}`, { fix: 'send a JSON object' });
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : undefined;
  const message = parsed.error.issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : '(body)'}: ${i.message}`).join('; ');
  throw new ProviderError('REQUEST_INVALID', message, { input: field, fix: 'correct the fields named' });
}

export function errorResponse(err: unknown): { status: number; body: ErrorBody } {
  if (isProviderError(err)) {
    const body: ErrorBody = { error: { code: err.code, message: err.message } };
    if (err.fix) body.error.fix = err.fix;
    if (typeof err.input === 'string' && err.code === 'REQUEST_INVALID') body.error.field = err.input;
    // parseManifest's input is its list of problems (never the manifest: it may hold credentials).
    if (err.code === 'MANIFEST_INVALID' && Array.isArray(err.input)) {
      const first = err.input[0] as { path?: unknown } | undefined;
      if (typeof first?.path === 'string') body.error.field = first.path;
    }
    return { status: HTTP_STATUS[err.code], body };
  }
  // Whatever else went wrong is ours, and its details are not the client's to see.
  return { status: 500, body: { error: { code: 'INTERNAL', message: 'internal error; the operator\'s log has the details' } } };
}

/**
 * The request's URL. A request target that is not a path (`http://[`, an absolute URL with a bad
 * port) is refused; a throw here outside the handler's try would leave the socket hanging.
 */
export function requestUrl(req: IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://provider.invalid');
  } catch {
    throw new ProviderError('REQUEST_INVALID', 'request target is not a valid path', { fix: 'send an origin-form path such as /v1/offer' });
  }
}

/** A path segment percent-decoded; malformed escapes (`%zz`) are the client's error, not a 500. */
export function decodeSegment(segment: string, name: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ProviderError('REQUEST_INVALID', `${name}: malformed percent-encoding`, { input: name, fix: 'percent-encode the path correctly' });
  }
}

/** True for an IPv4 or IPv6 loopback peer (IPv4-mapped included). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/**
 * True when `address` is one of this host's own interface addresses: a peer on the machine itself
 * reaching an API bound to a non-loopback address. TCP's handshake means a remote peer cannot
 * appear under our address; a container's traffic arrives from the container's address.
 */
export function isOwnAddress(address: string | undefined, interfaces: NodeJS.Dict<{ address: string }[]>): boolean {
  if (!address) return false;
  const peer = bareAddress(address);
  return Object.values(interfaces).some((list) => (list ?? []).some((iface) => bareAddress(iface.address) === peer));
}

/** Lower case, without an IPv4-mapped prefix or an IPv6 zone: how two spellings of one address compare. */
function bareAddress(address: string): string {
  const lower = address.toLowerCase();
  const unzoned = lower.includes('%') ? lower.slice(0, lower.indexOf('%')) : lower;
  return unzoned.startsWith('::ffff:') && unzoned.includes('.') ? unzoned.slice(7) : unzoned;
}

/** Answers an upgrade request with the error's status and JSON body, then closes the socket. */
export function refuseUpgrade(socket: Duplex, err: unknown): void {
  const { status, body } = errorResponse(err);
  const text = JSON.stringify(body);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'connection: close\r\ncontent-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    () => socket.destroy(),
  );
}

/** JSON with bigint values as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? item.toString() : item));
}

/** Writes a streamed response, waiting for the socket to drain; ends when the stream or the client does. */
async function pump(res: ServerResponse, status: number, result: RouteResult, stream: AsyncIterable<string>, signal: AbortSignal): Promise<void> {
  res.writeHead(status, { 'content-type': result.contentType ?? 'application/x-ndjson; charset=utf-8', 'cache-control': 'no-store', ...result.headers });
  for await (const chunk of stream) {
    if (res.destroyed) break;
    if (!res.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          res.off('drain', done);
          res.off('close', done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        res.once('drain', done);
        res.once('close', done);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }
  if (!res.destroyed) res.end();
}

function send(res: ServerResponse, status: number, result: RouteResult): void {
  if (res.headersSent) {
    // A stream that failed half-way: the status is gone, so cut the response short.
    if (!res.writableEnded) res.destroy();
    return;
  }
  if (result.json !== undefined) {
    const text = toJson(result.json);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...result.headers });
    res.end(text);
    return;
  }
  const text = result.text ?? '';
  res.writeHead(status, { 'content-type': result.contentType ?? 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text), ...result.headers });
  res.end(text);
}
