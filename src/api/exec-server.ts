import type { IncomingMessage } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { z } from 'zod';
import { isProviderError, ProviderError } from '../errors';
import type { Logger } from '../log';
import type { ExecSession } from '../runtime';
import type { Clock } from '../util/clock';
import type { AccessSettings, ExecAudit, LeaseDirectory, WorkloadDoor } from './lease-access';
import { PerLeaseSlots } from './lease-access';
import type { RequestRateLimiter } from './rate-limit';
import { param } from './routes';
import { decodeSegment, errorResponse, refuseUpgrade, requestUrl, type UpgradeHandler } from './server';
import type { TenantAuthenticator } from './tenant-auth';
import { leaseIdParam } from './wire';

export const EXEC_PATH = /^\/v1\/leases\/([^/]+)\/exec$/;
const EMPTY = Buffer.alloc(0);

/** First byte of each binary frame the server sends: which stream the rest is. */
export const EXEC_STREAM = { stdout: 1, stderr: 2 } as const;

/** What a client may send as a text frame; binary frames are the process's stdin. */
export const execControlWire = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('resize'), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }),
  z.strictObject({ type: z.literal('eof') }),
]);

/** What the server sends as text frames: the exit code last, or why the session failed. */
export type ExecServerMessage = { type: 'exit'; code: number } | { type: 'error'; code: string; message: string };

const size = z.coerce.number().int().min(1).max(1000);
const execQueryWire = z.strictObject({
  command: z.array(z.string().max(4096)).min(1).max(64).default(['/bin/sh']),
  tty: z.enum(['0', '1']).default('0').transform((v) => v === '1'),
  cols: size.optional(),
  rows: size.optional(),
});

export type ExecQuery = z.output<typeof execQueryWire>;

/** `?command=sh&command=-c&command=...&tty=1&cols=80&rows=24` (the command: one parameter per argument). */
export function parseExecQuery(search: URLSearchParams): ExecQuery {
  const raw: Record<string, unknown> = {};
  for (const key of new Set(search.keys())) raw[key] = key === 'command' ? search.getAll(key) : search.get(key);
  const parsed = execQueryWire.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.code === 'unrecognized_keys' ? issue.keys[0] : issue?.path.map(String).join('.');
  throw new ProviderError('REQUEST_INVALID', `query: ${field ?? ''}: ${issue?.message ?? 'invalid'}`, {
    input: field,
    fix: 'use command=<arg> (repeated, at most 64), tty=0|1, cols and rows (1-1000)',
  });
}

export interface ExecServerOptions {
  authenticator: TenantAuthenticator;
  directory: LeaseDirectory;
  backend: WorkloadDoor;
  audit: ExecAudit;
  limiter?: RequestRateLimiter;
  settings: () => AccessSettings;
  clock: Clock;
  log: Logger;
  /** Stop reading the process's output while this many bytes wait to be sent. */
  highWaterMarkBytes?: number;
}

interface Live {
  session: ExecSession;
  ws: WebSocket | undefined;
  done: Promise<void>;
}

/**
 * WS /v1/leases/:id/exec: a process in the lease's container (docker exec), its stdin from the
 * client's binary frames, its output back as binary frames tagged stdout/stderr, a terminal resized
 * by `{type: resize}`, and `{type: exit, code}` last. The upgrade is signed by the lease's tenant
 * (as the log stream's is) and refused with an HTTP status before it is accepted: a stranger, a
 * burst (the per-tenant `exec` bucket), a lease with its sessions all taken. Every session is
 * audited (store and log): who, from where, the command, when, how it ended; never its input.
 */
export class ExecServer implements UpgradeHandler {
  private readonly wss: WebSocketServer;
  private readonly slots: PerLeaseSlots;
  private readonly live = new Set<Live>();
  private closing = false;

  constructor(private readonly options: ExecServerOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024, perMessageDeflate: false });
    this.slots = new PerLeaseSlots(() => options.settings().exec.maxSessionsPerLease);
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    void this.accept(req, socket, head);
  }

  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    let log = this.options.log.child({ path: req.url?.slice(0, 200) });
    let slotOf: string | undefined;
    try {
      const url = requestUrl(req);
      log = this.options.log.child({ path: url.pathname });
      if (this.closing) throw new ProviderError('OPERATION_ABORTED', 'the daemon is shutting down');
      const match = EXEC_PATH.exec(url.pathname);
      if (!match) throw new ProviderError('ROUTE_NOT_FOUND', `no upgrade route ${url.pathname}`);
      if (req.method !== 'GET') throw new ProviderError('METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed on ${url.pathname}`);
      const tenant = this.options.authenticator.authenticate('GET', url.pathname + url.search, req.headers, EMPTY);
      // Before the lease is looked up or the engine asked: a flood costs a signature check each, no more.
      this.options.limiter?.check('exec', tenant, req.socket.remoteAddress);
      const lease = this.options.directory.accessible(param(leaseIdParam, decodeSegment(match[1] ?? '', 'id'), 'id'), tenant);
      const query = parseExecQuery(url.searchParams);
      if (!this.slots.take(lease.leaseId)) {
        const max = this.options.settings().exec.maxSessionsPerLease;
        throw new ProviderError('EXEC_SESSIONS_EXHAUSTED', `lease ${lease.leaseId} has ${max} sessions open, the most it may`, { fix: 'close a session of this lease first' });
      }
      slotOf = lease.leaseId;
      const session = await this.options.backend.openExec(lease.runtimeId, {
        command: query.command,
        tty: query.tty,
        ...(query.cols && query.rows ? { size: { cols: query.cols, rows: query.rows } } : {}),
      });
      const remoteAddress = req.socket.remoteAddress ?? null;
      const entry: Live = { session, ws: undefined, done: Promise.resolve() };
      this.live.add(entry);
      const leaseId = lease.leaseId;
      slotOf = undefined;
      entry.done = new Promise<void>((resolve) => {
        const release = (): void => {
          this.slots.release(leaseId);
          this.live.delete(entry);
          resolve();
        };
        // A client gone between the checks and the upgrade: ws then never calls back.
        const abandoned = (): void => {
          session.close();
          release();
        };
        socket.once('close', abandoned);
        this.wss.handleUpgrade(req, socket, head, (ws) => {
          socket.off('close', abandoned);
          entry.ws = ws;
          const startedAt = Math.floor(this.options.clock.now() / 1000);
          const auditId = this.options.audit.start({ leaseId, tenant, remoteAddress, command: query.command, tty: query.tty, startedAt });
          const sessionLog = log.child({ leaseId, tenant, session: auditId });
          sessionLog.info({ command: query.command, tty: query.tty, remoteAddress }, 'shell session opened');
          this.run(ws, session, sessionLog)
            .then(({ exitCode, outcome }) => {
              const endedAt = Math.floor(this.options.clock.now() / 1000);
              this.options.audit.end(auditId, endedAt, exitCode, outcome);
              sessionLog.info({ exitCode, outcome, seconds: endedAt - startedAt }, 'shell session ended');
            })
            .catch((err: unknown) => sessionLog.error({ err }, 'shell session failed'))
            .finally(release);
        });
      });
    } catch (err) {
      if (slotOf !== undefined) this.slots.release(slotOf);
      const { status, body } = errorResponse(err);
      if (status >= 500) log.error({ err }, 'shell session refused');
      else log.info({ status, code: body.error.code }, 'shell session refused');
      refuseUpgrade(socket, err);
    }
  }

  /** Pipes the session both ways until the process ends or the client goes; how it ended. */
  private async run(ws: WebSocket, session: ExecSession, log: Logger): Promise<{ exitCode: number | null; outcome: string }> {
    const highWaterMark = this.options.highWaterMarkBytes ?? 1024 * 1024;
    const idleMs = this.options.settings().exec.idleTimeoutSeconds * 1000;
    let idle = setTimeout(() => ws.close(1000, 'idle'), idleMs);
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => ws.close(1000, 'idle'), idleMs);
    };
    const gone = new Promise<'closed'>((resolve) => ws.once('close', () => resolve('closed')));
    ws.on('error', () => ws.terminate());
    ws.on('message', (data: RawData, isBinary: boolean) => {
      touch();
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) {
        if (!session.stdin.writableEnded) session.stdin.write(bytes);
        return;
      }
      const control = parseControl(bytes);
      if (!control) return;
      if (control.type === 'eof') session.stdin.end();
      else session.resize({ cols: control.cols, rows: control.rows }).catch((err: unknown) => log.debug({ err }, 'terminal resize failed'));
    });
    const forward = (stream: Readable, tag: number): void => {
      stream.on('data', (chunk: Buffer) => {
        touch();
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.send(Buffer.concat([Buffer.of(tag), chunk]));
        if (ws.bufferedAmount > highWaterMark) {
          stream.pause();
          void drained(ws, highWaterMark / 2).then(() => stream.resume());
        }
      });
    };
    forward(session.stdout, EXEC_STREAM.stdout);
    forward(session.stderr, EXEC_STREAM.stderr);
    const ended = Promise.all([session.exit, finished(session.stdout).catch(() => undefined), finished(session.stderr).catch(() => undefined)]).then(
      ([code]) => ({ code }),
      (err: unknown) => ({ err }),
    );
    const first = await Promise.race([ended, gone]);
    clearTimeout(idle);
    if (first === 'closed') {
      session.close();
      return { exitCode: null, outcome: this.closing ? 'shutdown' : 'closed' };
    }
    if ('err' in first) {
      const { body } = errorResponse(first.err);
      if (!isProviderError(first.err)) log.error({ err: first.err }, 'shell session failed');
      send(ws, { type: 'error', code: body.error.code, message: body.error.message });
      ws.close(1011, 'session failed');
      session.close();
      return { exitCode: null, outcome: `failed:${body.error.code}` };
    }
    send(ws, { type: 'exit', code: first.code });
    ws.close(1000, 'exited');
    return { exitCode: first.code, outcome: 'exited' };
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const entry of this.live) {
      entry.ws?.close(1001, 'shutdown');
      entry.session.close();
    }
    await Promise.race([Promise.all([...this.live].map((e) => e.done)), new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

function parseControl(bytes: Buffer): z.output<typeof execControlWire> | undefined {
  try {
    const parsed = execControlWire.safeParse(JSON.parse(bytes.toString('utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function send(ws: WebSocket, message: ExecServerMessage): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

/** Resolves once the socket's send buffer is below `lowWaterMark` or it closed. */
export async function drained(ws: WebSocket, lowWaterMark: number): Promise<void> {
  for (let i = 0; i < 60_000 && ws.bufferedAmount > lowWaterMark && ws.readyState === WebSocket.OPEN; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
