import Docker from 'dockerode';
import type { ProviderConfig } from '../config';

/**
 * The engine client the runtime is built with. No client-wide timeout: docker-modem would apply it
 * to log and event streams too, which idle for minutes; every call here carries its own signal.
 */
export function createDockerClient(config: Pick<ProviderConfig, 'docker'>): Docker {
  return new Docker({ socketPath: config.docker.socketPath });
}
