import { request } from 'node:http';
import { Wallet, type BaseWallet } from 'ethers';
import WebSocket from 'ws';
import { createProviderApi, InMemoryNonceLedger, ProviderMetrics, TenantAuthenticator, type ApiServer } from '../../src/api';
import { marketplaceDomain } from '../../src/chain';
import { silentLogger } from '../../src/log';
import { signRequest } from '../../src/tenant';
import { FakeProviderService } from './fake-provider-service';
import { systemClock } from '../../src/util/clock';

export const CHAIN_ID = 31337;

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  text: string;
}

/** One raw HTTP request: what a hostile client can send, bytes as given. */
export function send(port: number, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, timeout: 20_000 }, (res) => {
      res.on('error', reject);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = text;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed, text });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no reply in 20 s`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export async function signed(signer: BaseWallet, method: string, path: string, body = '', options: { expiresAt?: number; nonce?: string } = {}): Promise<Record<string, string>> {
  return { 'content-type': 'application/json', ...(await signRequest(signer, CHAIN_ID, method, path, body, options)) };
}

export interface ApiHarness {
  api: ApiServer;
  port: number;
  url: string;
  service: FakeProviderService;
  metrics: ProviderMetrics;
  providerKey: BaseWallet;
  close(): Promise<void>;
}

/** The real provider API (routes + log WebSocket) over a fake service, on 127.0.0.1. */
export async function startApi(
  options: { providerKey?: BaseWallet; marketplace?: string; maxBodyBytes?: number; service?: FakeProviderService; highWaterMarkBytes?: number; tls?: { cert: string; key: string } } = {},
): Promise<ApiHarness> {
  const providerKey = options.providerKey ?? Wallet.createRandom();
  const marketplace = options.marketplace ?? Wallet.createRandom().address;
  const clock = systemClock;
  const service =
    options.service ??
    new FakeProviderService({ providerKey, domain: marketplaceDomain(CHAIN_ID, marketplace), chainId: CHAIN_ID, marketplace });
  const metrics = new ProviderMetrics();
  const api = createProviderApi({
    service,
    metrics,
    authenticator: new TenantAuthenticator({ chainId: CHAIN_ID, maxSignatureAgeSeconds: 300, clock, nonces: new InMemoryNonceLedger(clock) }),
    maxBodyBytes: options.maxBodyBytes ?? 64 * 1024,
    log: silentLogger(),
    ...(options.highWaterMarkBytes === undefined ? {} : { logHighWaterMarkBytes: options.highWaterMarkBytes }),
    ...(options.tls ? { tls: options.tls } : {}),
  });
  const { port } = await api.listen('127.0.0.1', 0);
  return { api, port, url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`, service, metrics, providerKey, close: () => api.close() };
}

export interface WsOutcome {
  /** HTTP status of a refused upgrade, or 101. */
  status: number;
  messages: any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  body?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  closeCode?: number;
}

/** Opens the log socket with `headers`, collects messages until close (or `until` says stop). */
export function openLogs(
  port: number,
  path: string,
  headers: Record<string, string>,
  until?: (messages: any[], ws: WebSocket) => boolean, // eslint-disable-line @typescript-eslint/no-explicit-any
): Promise<WsOutcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers });
    const messages: unknown[] = [];
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, messages: [], body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      });
    });
    ws.on('message', (data: Buffer) => {
      messages.push(JSON.parse(data.toString('utf8')));
      if (until?.(messages, ws)) {
        ws.terminate();
      }
    });
    ws.on('close', (code) => resolve({ status: 101, messages, closeCode: code }));
    ws.on('error', (err) => {
      if (!/unexpected server response/i.test(err.message)) reject(err);
    });
  });
}
