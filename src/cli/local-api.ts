import type { ProviderConfig } from '../config';

/**
 * Where commands on this machine reach the running daemon's API: loopback when it listens on
 * every address (operator routes answer only to the machine itself), else the address it binds.
 */
export function localApiUrl(config: Pick<ProviderConfig, 'api'>): string {
  const { host, port } = config.api;
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${local.includes(':') ? `[${local}]` : local}:${port}`;
}
