import { Agent, request, type RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { isLoopback } from '../api';
import { ProviderError } from '../errors';
import { formatPin, normalisePin, sha256OfDer } from '../tls';

/** The pin, or where to read it when first needed (the provider's on-chain metadata). */
export type PinSource = string | (() => Promise<string>);

export interface PinnedRequest {
  method: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

/** Longest answer read into memory; the API's answers are JSON views, far smaller. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
const CONNECT_TIMEOUT_MS = 30_000;

/**
 * Every byte a tenant exchanges with a provider goes through here. https URLs: the provider's
 * certificate must hash (SHA-256 of its DER) to the pin, or nothing is sent (TLS_PIN_MISMATCH);
 * no CA is consulted, so a self-signed certificate is as good as a CA-issued one, and a CA-issued
 * one for the right name but the wrong key is refused. http URLs only to loopback (tests, and a
 * provider with api.tls.enabled false on this machine): anything else would carry manifests in clear.
 */
export class PinnedTransport {
  private pin: string | undefined;
  private agent: Agent | undefined;
  readonly url: URL;

  constructor(
    apiUrl: string,
    private readonly pinSource: PinSource | undefined,
  ) {
    this.url = new URL(apiUrl);
    if (this.url.protocol === 'http:' && !isLoopbackHost(this.url.hostname)) {
      throw new ProviderError('TLS_PIN_MISSING', `${apiUrl} is plain HTTP: a manifest's secrets would cross the network in clear`, {
        input: apiUrl,
        fix: 'use the provider\'s https:// URL from its on-chain registration (providers serve TLS by default)',
      });
    }
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') {
      throw new ProviderError('REQUEST_INVALID', `${apiUrl} is not an http(s) URL`, { input: apiUrl, fix: 'give the provider\'s https:// API URL' });
    }
  }

  get secure(): boolean {
    return this.url.protocol === 'https:';
  }

  /** fetch(), pinned. The whole answer is read (bounded) before it is returned. */
  async fetch(url: string, init: PinnedRequest): Promise<Response> {
    if (!this.secure) return fetch(url, init);
    const agent = await this.pinnedAgent();
    const target = new URL(url);
    const options: RequestOptions = { method: init.method, headers: init.headers ?? {}, agent, ...(init.signal ? { signal: init.signal } : {}) };
    return new Promise<Response>((resolve, reject) => {
      const req = request(target, options, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new ProviderError('PROVIDER_RESPONSE_INVALID', `answer larger than ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) if (typeof value === 'string') headers.set(name, value);
          // Response refuses a body on these statuses.
          const empty = res.statusCode === 204 || res.statusCode === 304;
          resolve(new Response(empty ? null : Buffer.concat(chunks), { status: res.statusCode ?? 0, headers }));
        });
      });
      req.on('error', (err) => reject(this.noted(err)));
      req.end(init.body);
    });
  }

  /** Options for a `ws` WebSocket to this provider (wss:// through the pinned agent). */
  async webSocketOptions(): Promise<{ agent?: Agent }> {
    return this.secure ? { agent: await this.pinnedAgent() } : {};
  }

  /** The ws:// or wss:// form of a path on this provider. */
  webSocketUrl(path: string): string {
    return `${this.url.origin.replace(/^http/, 'ws')}${path}`;
  }

  /**
   * A raw TLS connection to the provider's API port, checked against the pin before it is
   * returned (for protocols beside HTTP on the same port). https URLs only.
   */
  async connect(options: { signal?: AbortSignal; timeoutMs?: number; alpn?: string[] } = {}): Promise<TLSSocket> {
    if (!this.secure) throw new ProviderError('TLS_PIN_MISSING', `${this.url.origin} does not speak TLS`, { fix: 'use the provider\'s https:// URL' });
    const pin = await this.expectedPin();
    return connectPinned(this.url.hostname, Number(this.url.port || 443), pin, options).catch((err: unknown) => {
      throw this.noted(err);
    });
  }

  /** Ends the kept-alive connections. */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private async expectedPin(): Promise<string> {
    if (this.pin) return this.pin;
    if (this.pinSource === undefined) {
      throw new ProviderError('TLS_PIN_MISSING', `no certificate pin for ${this.url.origin}`, {
        fix: 'pass the provider\'s address (its pin is read from its on-chain registration, metadata tls.sha256) or the pin itself',
      });
    }
    const text = typeof this.pinSource === 'string' ? this.pinSource : await this.pinSource().catch((err: unknown) => {
      if (err instanceof ProviderError) throw err;
      throw new ProviderError('TLS_PIN_MISSING', `cannot read the certificate pin of ${this.url.origin} from the chain: ${(err as Error).message}`, {
        cause: err,
        fix: 'check that the chain\'s RPC endpoint answers (--rpc-url, network.rpcUrl): the pin is read from the provider\'s registration',
      });
    });
    const pin = normalisePin(text);
    if (!pin) throw new ProviderError('TLS_PIN_MISSING', `"${text.slice(0, 100)}" is not a SHA-256 pin`, { fix: 'give 64 hex digits (colons allowed)' });
    this.pin = pin;
    return pin;
  }

  private async pinnedAgent(): Promise<Agent> {
    const pin = await this.expectedPin();
    const agent = this.agent ?? new PinnedAgent(pin);
    this.agent = agent;
    return agent;
  }

  /** A mismatch forgets a pin read from the chain: the provider may have renewed, so the next call reads it again. */
  private noted(err: unknown): unknown {
    if (err instanceof ProviderError && err.code === 'TLS_PIN_MISMATCH' && typeof this.pinSource === 'function') {
      this.pin = undefined;
      this.close();
    }
    return err;
  }
}

/**
 * An https.Agent whose connections are handed to HTTP only once the certificate matched the pin:
 * until then no request byte is written (a Node client writes into a socket still in its
 * handshake, and those bytes would go to whoever answered).
 */
class PinnedAgent extends Agent {
  constructor(private readonly pin: string) {
    super({ keepAlive: true, maxCachedSessions: 0 });
  }

  // Returning nothing makes the agent wait for the callback (node's _http_agent createSocket).
  override createConnection(options: RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    connectPinned(options.host ?? 'localhost', Number(options.port ?? 443), this.pin, {}).then(
      (socket) => callback?.(null, socket),
      (err: Error) => (callback as ((err: Error) => void) | undefined)?.(err),
    );
    return undefined;
  }
}

/** tls.connect, then the pin check; the socket is destroyed on a mismatch before anything is sent. */
export function connectPinned(host: string, port: number, pin: string, options: { signal?: AbortSignal; timeoutMs?: number; alpn?: string[] }): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      // SNI takes names only; pinning does not depend on it.
      ...(isIP(host.replace(/^\[|\]$/g, '')) ? {} : { servername: host }),
      // The pin is the trust: the CA check would refuse a self-signed certificate before we see it.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
    });
    const fail = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new ProviderError('PROVIDER_UNREACHABLE', `TLS handshake with ${host}:${port} did not finish in time`, { fix: 'check the provider API URL and that it is up' })), options.timeoutMs ?? CONNECT_TIMEOUT_MS);
    const onAbort = (): void => fail(options.signal?.reason instanceof Error ? options.signal.reason : new ProviderError('OPERATION_ABORTED', 'connection aborted'));
    const onError = (err: Error): void => fail(err);
    const cleanup = (): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate();
      const got = cert.raw ? sha256OfDer(cert.raw) : undefined;
      if (got !== pin) return fail(pinMismatch(`${host}:${port}`, pin, got));
      cleanup();
      resolve(socket);
    });
  });
}

export function pinMismatch(where: string, expected: string, got: string | undefined): ProviderError {
  return new ProviderError('TLS_PIN_MISMATCH', `the certificate of ${where} is not the one the provider registered: expected SHA-256 ${formatPin(expected)}, got ${got ? formatPin(got) : 'no certificate'}`, {
    input: { expected, got: got ?? null },
    fix: 'do not send anything to this address: someone between you and the provider (or a wrong URL) answers in its place. If the provider renewed its certificate, its new pin is on-chain within minutes: try again; if it persists, tell the provider to run `provider doctor`',
  });
}

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || isLoopback(host);
}
