import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { z } from 'zod';
import { isProviderError, ProviderError } from '../errors';
import type { Logger } from '../log';
import { param, parseLogQuery } from './routes';
import { decodeSegment, errorResponse, refuseUpgrade, requestUrl, type UpgradeHandler } from './server';
import type { LogQuery, ProviderService } from './service';
import type { TenantAuthenticator } from './tenant-auth';
import { leaseIdParam, logEntryWire, type LogEnd } from './wire';

export interface LogStreamOptions {
  service: ProviderService;
  authenticator: TenantAuthenticator;
  log: Logger;
  /** Stop reading the service's stream while this many bytes wait to be sent. */
  highWaterMarkBytes?: number;
  /** Largest message a client may send us (it has nothing to say). */
  maxClientPayloadBytes?: number;
  /** A follower that answers no ping within this long is dropped (and its stream aborted). */
  pingIntervalMs?: number;
}

const LOGS_PATH = /^\/v1\/leases\/([^/]+)\/logs$/;
const EMPTY = Buffer.alloc(0);

interface Stream {
  ws: WebSocket;
  controller: AbortController;
  done: Promise<void>;
}

/**
 * WS /v1/leases/:id/logs?tail=N&follow=1&since=T on the API's own port. The upgrade request is
 * signed like any tenant request (method GET, path with its query, empty body) and checked
 * against the lease before the socket is upgraded, so a refusal is a plain HTTP status. Then one
 * JSON message per log line and a last `{end: true, reason}` before the close.
 */
export class LogStreamServer implements UpgradeHandler {
  private readonly wss: WebSocketServer;
  private readonly streams = new Set<Stream>();
  private closing = false;

  constructor(private readonly options: LogStreamOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.maxClientPayloadBytes ?? 1024, perMessageDeflate: false });
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    void this.accept(req, socket, head);
  }

  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    let log = this.options.log.child({ path: req.url?.slice(0, 200) });
    let leaseId: string;
    let tenant: string;
    let query: LogQuery;
    try {
      const url = requestUrl(req);
      log = this.options.log.child({ path: url.pathname });
      if (this.closing) throw new ProviderError('OPERATION_ABORTED', 'the daemon is shutting down');
      const match = LOGS_PATH.exec(url.pathname);
      if (!match) throw new ProviderError('ROUTE_NOT_FOUND', `no upgrade route ${url.pathname}`);
      if (req.method !== 'GET') throw new ProviderError('METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed on ${url.pathname}`);
      tenant = this.options.authenticator.authenticate('GET', url.pathname + url.search, req.headers, EMPTY);
      leaseId = param(leaseIdParam, decodeSegment(match[1] ?? '', 'id'), 'id');
      query = parseLogQuery(url.searchParams);
      // Refuse a stranger (AUTH_FORBIDDEN) or an unknown lease with an HTTP status, before upgrading.
      await this.options.service.lease(leaseId, tenant);
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500) log.error({ err }, 'log stream refused');
      else log.info({ status, code: body.error.code }, 'log stream refused');
      refuseUpgrade(socket, err);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.stream(ws, leaseId, tenant, query, log.child({ leaseId, tenant })));
  }

  private stream(ws: WebSocket, leaseId: string, tenant: string, query: LogQuery, log: Logger): void {
    const controller = new AbortController();
    const goneAway = (): void => controller.abort(new ProviderError('OPERATION_ABORTED', 'client went away'));
    ws.on('close', goneAway);
    ws.on('error', goneAway);
    // A tenant has nothing to send; whatever it sends is ignored.
    ws.on('message', () => undefined);
    // A quiet follow stream behind a NAT or proxy can die without a close: ping, and drop the silent.
    let alive = true;
    ws.on('pong', () => {
      alive = true;
    });
    const pinger = setInterval(() => {
      if (!alive) {
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping();
    }, this.options.pingIntervalMs ?? 30_000);
    pinger.unref();
    const entry: Stream = { ws, controller, done: Promise.resolve() };
    entry.done = this.pump(ws, leaseId, tenant, query, controller.signal, log).finally(() => {
      clearInterval(pinger);
      this.streams.delete(entry);
    });
    this.streams.add(entry);
  }

  private async pump(ws: WebSocket, leaseId: string, tenant: string, query: LogQuery, signal: AbortSignal, log: Logger): Promise<void> {
    const highWaterMark = this.options.highWaterMarkBytes ?? 1024 * 1024;
    let end: LogEnd = { end: true, reason: 'end-of-log' };
    let lines = 0;
    try {
      for await (const line of this.options.service.logs(leaseId, tenant, query, signal)) {
        if (signal.aborted || ws.readyState !== WebSocket.OPEN) break;
        ws.send(JSON.stringify(z.encode(logEntryWire, line)));
        lines += 1;
        if (ws.bufferedAmount > highWaterMark) await drained(ws, highWaterMark / 2, signal);
      }
    } catch (err) {
      if (!signal.aborted) {
        const { status, body } = errorResponse(err);
        if (status >= 500 && !isProviderError(err)) log.error({ err }, 'log stream failed');
        end = { end: true, reason: 'error', error: { code: body.error.code, message: body.error.message } };
      }
    }
    if (this.closing) end = { end: true, reason: 'shutdown' };
    log.debug({ lines, reason: end.reason }, 'log stream ended');
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify(end));
    ws.close(this.closing ? 1001 : 1000, end.reason);
    await closed(ws, 2_000);
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const stream of this.streams) stream.controller.abort(new ProviderError('OPERATION_ABORTED', 'the daemon is shutting down'));
    await Promise.all([...this.streams].map((s) => s.done));
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** Resolves once the socket's send buffer is below `lowWaterMark`, or it closed, or `signal` fired. */
async function drained(ws: WebSocket, lowWaterMark: number, signal: AbortSignal): Promise<void> {
  while (ws.bufferedAmount > lowWaterMark && ws.readyState === WebSocket.OPEN && !signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function closed(ws: WebSocket, timeoutMs: number): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      ws.terminate();
      resolve();
    }, timeoutMs);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
