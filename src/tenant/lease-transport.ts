import type { Signer } from 'ethers';
import WebSocket from 'ws';
import { ProviderError } from '../errors';
import { PinnedTransport } from './pinned-transport';
import { signRequest } from './request-signer';
import { refusal } from './tenant-client';

/** A provider's API as the lease clients (shell, port-forward, tokens) reach it. */
export interface LeaseEndpoint {
  /** http(s)://host:port of the provider API. */
  apiUrl: string;
  /** The tenant's key: every request is signed with it, unless a token is given instead. */
  signer?: Signer;
  chainId: number;
  /**
   * Every request and socket goes through it: TLS pinned to the provider's registered certificate
   * (a TenantClient's `transport`). Default: plain HTTP, which only a loopback URL is allowed.
   */
  transport?: PinnedTransport;
  /** Handshake and request bound (default 30 s). */
  timeoutMs?: number;
}

/** How a request proves it may: the tenant's signature (default), or a lease access token. */
export async function authHeaders(endpoint: LeaseEndpoint, method: string, path: string, body: string, token?: string): Promise<Record<string, string>> {
  if (token !== undefined) return { authorization: `Bearer ${token}` };
  if (!endpoint.signer) throw new ProviderError('USAGE', 'neither a tenant key nor an access token was given', { fix: 'pass the tenant signer, or an access token of the lease' });
  return signRequest(endpoint.signer, endpoint.chainId, method, path, body);
}

/**
 * Opens a WebSocket to `path` on the provider's API, authenticated, and resolves once it is open;
 * a refused upgrade rejects with the provider's code (ProviderRefusedError), as a refused request does.
 */
export async function openLeaseSocket(endpoint: LeaseEndpoint, path: string, options: { token?: string; signal?: AbortSignal } = {}): Promise<WebSocket> {
  const headers = await authHeaders(endpoint, 'GET', path, '', options.token);
  const transport = transportOf(endpoint);
  const ws = new WebSocket(transport.webSocketUrl(path), { headers, handshakeTimeout: endpoint.timeoutMs ?? 30_000, perMessageDeflate: false, ...(await transport.webSocketOptions()) });
  return new Promise<WebSocket>((resolve, reject) => {
    const onAbort = (): void => {
      ws.terminate();
      reject(options.signal?.reason);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (): void => options.signal?.removeEventListener('abort', onAbort);
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        settle();
        ws.terminate();
        reject(refusal(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')));
      });
    });
    ws.once('open', () => {
      settle();
      ws.removeAllListeners('error');
      resolve(ws);
    });
    ws.once('error', (err) => {
      settle();
      reject(new ProviderError('PROVIDER_UNREACHABLE', `${path}: ${err.message}`, { cause: err, fix: 'check the provider API URL and that it is up' }));
    });
  });
}

/** The endpoint's transport; without one, plain HTTP (PinnedTransport refuses it unless the URL is loopback: TLS_PIN_MISSING). */
export function transportOf(endpoint: LeaseEndpoint): PinnedTransport {
  return endpoint.transport ?? new PinnedTransport(endpoint.apiUrl, undefined);
}
