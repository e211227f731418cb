import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { Client, type ClientChannel } from 'ssh2';
import { Backoff } from '../chain';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { withTimeout } from '../util/with-timeout';
import { healthzOver } from './probe';

export interface RelaySettings {
  host: string;
  port: number;
  user: string;
  keyFile: string;
  knownHostKey: string;
  remotePort: number;
  publicHost?: string | undefined;
  connectTimeoutMs: number;
  maxReconnectDelayMs: number;
}

export interface RelayTunnelDeps {
  /** Takes each tenant connection the relay forwards: the API server's accept. */
  accept: (stream: Duplex) => void;
  clock: Clock;
  log: Logger;
  readKey?: (path: string) => Promise<Buffer>;
}

/**
 * A reverse tunnel through an OpenSSH server (`ssh -R`): the relay listens on remotePort and
 * hands every connection down the SSH session, which delivers it to the API server as raw bytes.
 * TLS is therefore end to end; the relay sees ciphertext. The relay's host key is pinned
 * (knownHostKey), so a man in the middle cannot pose as the relay. A dropped session is
 * reconnected with backoff, up to maxReconnectDelayMs between tries, for as long as the daemon runs.
 */
export class SshRelayTunnel {
  private client: Client | undefined;
  private closed = false;
  private readonly controller = new AbortController();
  private reconnecting: Promise<void> | undefined;
  private forward = true;

  constructor(
    private readonly settings: RelaySettings,
    private readonly deps: RelayTunnelDeps,
  ) {}

  /** The host tenants reach the relay at. */
  get publicHost(): string {
    return this.settings.publicHost ?? this.settings.host;
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  /**
   * The first session: throws RELAY_FAILED or RELAY_HOST_KEY_MISMATCH, so start-up can say why.
   * Without `forward` the session only serves as the vantage point that verifies another path.
   */
  async open(options: { forward: boolean; signal?: AbortSignal }): Promise<void> {
    this.forward = options.forward;
    this.client = await this.connect(options.signal);
  }



  /**
   * Asks the relay to connect to `url` from its side (a direct-tcpip channel: the relay is the
   * vantage point outside) and GET /healthz there. Resolves with the HTTP status.
   */
  async probe(url: URL, timeoutMs: number, signal?: AbortSignal): Promise<number> {
    const client = this.client;
    if (!client) throw new ProviderError('RELAY_FAILED', 'the relay session is down', { fix: 'see the log for why the relay connection dropped' });
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return withTimeout(`GET ${url.origin}/healthz from the relay`, timeoutMs, async (s) => {
      const channel = await new Promise<ClientChannel>((resolve, reject) =>
        client.forwardOut('127.0.0.1', 0, host, port, (err, stream) => (err ? reject(err) : resolve(stream))),
      );
      return healthzOver(channel, url, s);
    }, signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.controller.abort();
    const client = this.client;
    this.client = undefined;
    if (client) {
      await new Promise<void>((resolve) => {
        client.once('close', () => resolve());
        if (this.forward) client.unforwardIn('0.0.0.0', this.settings.remotePort, () => client.end());
        else client.end();
        setTimeout(() => {
          client.destroy();
          resolve();
        }, 2_000).unref();
      });
    }
    await this.reconnecting;
  }

  private async connect(signal?: AbortSignal): Promise<Client> {
    const { settings, deps } = this;
    const key = await (deps.readKey ?? readFile)(settings.keyFile).catch((err: unknown) => {
      throw new ProviderError('RELAY_FAILED', `cannot read the relay key ${settings.keyFile}: ${describeError(err)}`, { input: 'reachability.relay.keyFile', fix: 'point reachability.relay.keyFile at a readable, unencrypted private key' });
    });
    const client = new Client();
    let hostKeyRefused: string | undefined;
    return withTimeout(`connecting to the relay ${settings.host}:${settings.port}`, settings.connectTimeoutMs + 5_000, async () => {
      await new Promise<void>((resolve, reject) => {
        const fail = (err: Error): void => {
          client.destroy();
          if (hostKeyRefused) {
            reject(new ProviderError('RELAY_HOST_KEY_MISMATCH', `the relay ${settings.host}:${settings.port} showed host key ${hostKeyRefused}, not the pinned one`, {
              input: 'reachability.relay.knownHostKey',
              fix: `if the relay's key really changed, check it on the relay (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and set reachability.relay.knownHostKey; otherwise someone is between you and the relay`,
            }));
          } else {
            reject(new ProviderError('RELAY_FAILED', `cannot open the tunnel through ${settings.user}@${settings.host}:${settings.port}: ${err.message}`, {
              cause: err,
              fix: 'check the relay address, that the key is in the user\'s authorized_keys, and that its sshd_config has GatewayPorts clientspecified (or yes)',
            }));
          }
        };
        client.once('error', fail);
        client.once('ready', () => {
          if (!this.forward) {
            client.off('error', fail);
            resolve();
            return;
          }
          client.forwardIn('0.0.0.0', settings.remotePort, (err) => {
            if (err) {
              fail(new Error(`the relay refused to listen on port ${settings.remotePort}: ${err.message}`));
              return;
            }
            client.off('error', fail);
            resolve();
          });
        });
        client.connect({
          host: settings.host,
          port: settings.port,
          username: settings.user,
          privateKey: key,
          readyTimeout: settings.connectTimeoutMs,
          keepaliveInterval: 15_000,
          keepaliveCountMax: 3,
          hostVerifier: (hostKey: Buffer) => {
            if (hostKeyMatches(hostKey, settings.knownHostKey)) return true;
            hostKeyRefused = fingerprint(hostKey);
            return false;
          },
        });
      });
      client.on('tcp connection', (_info, accept) => deps.accept(accept()));
      client.on('error', (err) => deps.log.warn({ err: err.message }, 'relay session error'));
      client.once('close', () => this.dropped(client));
      deps.log.info({ relay: `${settings.host}:${settings.port}`, remotePort: this.forward ? settings.remotePort : undefined }, this.forward ? 'relay tunnel open' : 'relay session open (to verify from outside)');
      return client;
    }, signal);
  }

  private dropped(client: Client): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    this.deps.log.warn({ relay: this.settings.host }, 'the relay tunnel dropped; reconnecting');
    this.reconnecting = this.reconnect();
  }

  private async reconnect(): Promise<void> {
    const backoff = new Backoff({ initialMs: 1_000, maxMs: this.settings.maxReconnectDelayMs });
    const signal = this.controller.signal;
    while (!this.closed) {
      try {
        await this.deps.clock.sleep(backoff.next(), signal);
        this.client = await this.connect(signal);
        return;
      } catch (err) {
        if (this.closed) return;
        this.deps.log.warn({ err: describeError(err), attempt: backoff.attempts }, 'relay reconnection failed');
      }
    }
  }
}

/** SHA256:<base64 without padding>, as ssh-keygen -l prints it. */
export function fingerprint(hostKey: Buffer): string {
  return `SHA256:${createHash('sha256').update(hostKey).digest('base64').replace(/=+$/, '')}`;
}

/** `knownHostKey` is a known_hosts key (`ssh-ed25519 AAAA...`, a leading host name allowed) or a SHA256: fingerprint. */
export function hostKeyMatches(hostKey: Buffer, knownHostKey: string): boolean {
  const pinned = knownHostKey.trim();
  if (pinned.startsWith('SHA256:')) return fingerprint(hostKey) === pinned.replace(/=+$/, '');
  const parts = pinned.split(/\s+/);
  const blob = parts.find((part, i) => i > 0 && parts[i - 1]!.startsWith('ssh-') || i > 0 && parts[i - 1]!.startsWith('ecdsa-'));
  return blob !== undefined && Buffer.from(blob, 'base64').equals(hostKey);
}
