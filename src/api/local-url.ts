import type { ProviderConfig } from '../config';

/**
 * How this machine reaches an API listening on `host:port`: loopback when it listens on every
 * address (operator routes answer only to the machine itself), else the address it binds.
 */
export function localUrl(host: string, port: number, scheme: 'http' | 'https' = 'http'): string {
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `${scheme}://${local.includes(':') ? `[${local}]` : local}:${port}`;
}

/** The operator listener's port: api.operatorPort, else the one after api.port. */
export function operatorPortOf(config: Pick<ProviderConfig, 'api'>): number {
  return config.api.operatorPort ?? config.api.port + 1;
}

/**
 * Where operator commands on this machine reach the running daemon: its plain-HTTP operator
 * listener on loopback (the public port speaks TLS, and these commands hold no pin).
 */
export function localApiUrl(config: Pick<ProviderConfig, 'api'>): string {
  return localUrl('127.0.0.1', operatorPortOf(config));
}

/** The public API as this machine reaches it: https (unless api.tls.enabled is false) on api.host:api.port. */
export function publicApiUrl(config: Pick<ProviderConfig, 'api'>): string {
  return localUrl(config.api.host, config.api.port, config.api.tls.enabled ? 'https' : 'http');
}
