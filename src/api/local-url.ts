import type { ProviderConfig } from '../config';

/**
 * How this machine reaches an API listening on `host:port`: loopback when it listens on every
 * address (operator routes answer only to the machine itself), else the address it binds.
 */
export function localUrl(host: string, port: number): string {
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${local.includes(':') ? `[${local}]` : local}:${port}`;
}

/** Where commands on this machine reach the running daemon's API. */
export function localApiUrl(config: Pick<ProviderConfig, 'api'>): string {
  return localUrl(config.api.host, config.api.port);
}
