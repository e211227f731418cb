import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { WebSocket, type RawData } from 'ws';
import { ProviderError } from '../errors';
import { openLeaseSocket, type LeaseEndpoint } from './lease-transport';

export interface PortForwardOptions {
  /** Local address to listen on (default 127.0.0.1: the forward is yours, not your network's). */
  host?: string;
  /** Local port (default 0: any free one; `address` says which). */
  localPort?: number;
  /** A lease access token instead of the tenant's signature. */
  token?: string;
  /** Told of each connection that could not be tunnelled (the provider's code), which is then closed. */
  onError?: (err: unknown) => void;
}

export interface PortForward {
  address: AddressInfo;
  /** Stops listening and ends every tunnel. */
  close(): Promise<void>;
}

/**
 * `provider tenant port-forward <lease> <port> [local]`: listens on a local port; each local
 * connection becomes one WebSocket tunnel (WS /v1/leases/:id/tunnel/:port) to the lease's port.
 */
export async function forwardPort(endpoint: LeaseEndpoint, leaseId: bigint | string, port: number, options: PortForwardOptions = {}): Promise<PortForward> {
  const sockets = new Set<Socket>();
  const path = `/v1/leases/${leaseId}/tunnel/${port}`;
  const server: Server = createServer((local) => {
    sockets.add(local);
    local.once('close', () => sockets.delete(local));
    local.on('error', () => local.destroy());
    local.pause();
    openLeaseSocket(endpoint, path, options.token === undefined ? {} : { token: options.token })
      .then((ws) => join(local, ws))
      .catch((err: unknown) => {
        options.onError?.(err);
        local.destroy();
      });
  });
  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', (err) => reject(new ProviderError('PORT_UNAVAILABLE', `cannot listen on ${options.host ?? '127.0.0.1'}:${options.localPort ?? 0}: ${err.message}`, { cause: err, fix: 'pick another local port' })));
    server.listen(options.localPort ?? 0, options.host ?? '127.0.0.1', () => resolve(server.address() as AddressInfo));
  });
  return {
    address,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Bytes both ways between a local connection and its tunnel, with backpressure each way. */
function join(local: Socket, ws: WebSocket): void {
  local.on('data', (chunk: Buffer) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(chunk, { binary: true });
    if (ws.bufferedAmount > 1024 * 1024) {
      local.pause();
      const wait = setInterval(() => {
        if (ws.bufferedAmount < 512 * 1024 || ws.readyState !== WebSocket.OPEN) {
          clearInterval(wait);
          local.resume();
        }
      }, 10);
    }
  });
  local.once('end', () => ws.close(1000, 'local closed'));
  local.once('close', () => ws.close(1000, 'local closed'));
  ws.on('message', (data: RawData) => {
    const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
    if (!local.write(bytes)) {
      ws.pause();
      local.once('drain', () => ws.resume());
    }
  });
  ws.once('close', () => local.end());
  ws.on('error', () => local.destroy());
  local.resume();
}
