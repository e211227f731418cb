import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import { drained } from './exec-server';
import { portParam, type AccessSettings, type PerLeaseSlots, type WorkloadDoor } from './lease-access';
import type { DoorPass, LeaseDoor } from './lease-door';
import { tooManyConnections } from './port-proxy';
import { param } from './routes';
import { decodeSegment, errorResponse, refuseUpgrade, requestUrl, type UpgradeHandler } from './server';
import { leaseIdParam } from './wire';

export const TUNNEL_PATH = /^\/v1\/leases\/([^/]+)\/tunnel\/([^/]+)$/;

export interface TunnelServerOptions {
  door: LeaseDoor;
  backend: WorkloadDoor;
  connections: PerLeaseSlots;
  settings: () => AccessSettings;
  log: Logger;
  highWaterMarkBytes?: number;
}

/**
 * WS /v1/leases/:id/tunnel/:port: one TCP connection to a port the lease's manifest published,
 * carried as binary frames (a database, an SSH server, anything not HTTP). The connection to the
 * lease is made before the upgrade is accepted, so a closed port is a 502, not an empty socket.
 */
export class TunnelServer implements UpgradeHandler {
  private readonly wss: WebSocketServer;
  private readonly open = new Set<{ ws: WebSocket | undefined; tcp: Socket }>();
  private closing = false;

  constructor(private readonly options: TunnelServerOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024, perMessageDeflate: false });
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    void this.accept(req, socket, head);
  }

  private async accept(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    let pass: DoorPass | undefined;
    let slot = false;
    try {
      if (this.closing) throw new ProviderError('OPERATION_ABORTED', 'the daemon is shutting down');
      const url = requestUrl(req);
      const match = TUNNEL_PATH.exec(url.pathname);
      if (!match) throw new ProviderError('ROUTE_NOT_FOUND', `no upgrade route ${url.pathname}`);
      if (req.method !== 'GET') throw new ProviderError('METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed on ${url.pathname}`);
      const leaseId = param(leaseIdParam, decodeSegment(match[1] ?? '', 'id'), 'id');
      const port = param(portParam, decodeSegment(match[2] ?? '', 'port'), 'port');
      pass = this.options.door.admit(req, url, Buffer.alloc(0), leaseId, port);
      const settings = this.options.settings().proxy;
      if (!this.options.connections.take(pass.lease.leaseId)) throw tooManyConnections(pass.lease.leaseId, settings.maxConnectionsPerLease);
      slot = true;
      const address = await this.options.backend.address(pass.lease.runtimeId, { signal: AbortSignal.timeout(settings.connectTimeoutMs) });
      const tcp = await dial(address, pass, settings.connectTimeoutMs);
      const entry = { ws: undefined as WebSocket | undefined, tcp };
      this.open.add(entry);
      const leaseIdOf = pass.lease.leaseId;
      const log = this.options.log.child({ leaseId: leaseIdOf, port, tenant: pass.tenant, via: pass.via });
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        this.open.delete(entry);
        this.options.connections.release(leaseIdOf);
        tcp.destroy();
        if (entry.ws && entry.ws.readyState !== WebSocket.CLOSED) entry.ws.close(1000, 'tunnel closed');
      };
      socket.once('close', () => {
        if (!entry.ws) finish();
      });
      slot = false;
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        entry.ws = ws;
        log.info('tunnel opened');
        this.pipe(ws, tcp, settings.idleTimeoutMs, finish);
        ws.once('close', () => log.debug('tunnel closed'));
      });
    } catch (err) {
      if (slot && pass) this.options.connections.release(pass.lease.leaseId);
      const { status, body } = errorResponse(err);
      if (status >= 500 && status !== 502 && status !== 504) this.options.log.error({ err }, 'tunnel refused');
      else this.options.log.info({ status, code: body.error.code }, 'tunnel refused');
      refuseUpgrade(socket, err);
    }
  }

  private pipe(ws: WebSocket, tcp: Socket, idleMs: number, finish: () => void): void {
    const highWaterMark = this.options.highWaterMarkBytes ?? 1024 * 1024;
    tcp.setTimeout(idleMs, finish);
    tcp.on('data', (chunk: Buffer) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(chunk);
      if (ws.bufferedAmount > highWaterMark) {
        tcp.pause();
        void drained(ws, highWaterMark / 2).then(() => tcp.resume());
      }
    });
    // The lease's side half-closed: the tunnel ends once what it sent is out.
    tcp.once('end', () => ws.close(1000, 'remote closed'));
    tcp.once('close', finish);
    tcp.once('error', finish);
    ws.on('message', (data: RawData) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!tcp.write(bytes)) {
        ws.pause();
        tcp.once('drain', () => ws.resume());
      }
    });
    ws.once('close', () => tcp.end());
    ws.once('error', finish);
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const entry of this.open) {
      entry.tcp.destroy();
      entry.ws?.terminate();
    }
    for (const client of this.wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

function dial(address: string, pass: DoorPass, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const tcp = connect({ host: address, port: pass.port });
    const timer = setTimeout(() => tcp.destroy(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    tcp.once('connect', () => {
      clearTimeout(timer);
      tcp.removeAllListeners('error');
      resolve(tcp);
    });
    tcp.once('error', (err) => {
      clearTimeout(timer);
      reject(
        new ProviderError('UPSTREAM_UNREACHABLE', `port ${pass.port} of lease ${pass.lease.leaseId} did not answer: ${err.message}`, {
          fix: 'check that the lease\'s service listens on that port on all its addresses (0.0.0.0)',
        }),
      );
    });
  });
}
