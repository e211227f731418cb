import type { AddressInfo } from 'node:net';
import { ApiServer, TenantAuthenticator, type ProviderService } from '../api';
import type { AllocationLedger } from '../capacity';
import type { ProviderConfig } from '../config';
import type { Logger } from '../log';
import { SqliteNonceLedger, type LeaseStore } from '../store';
import type { Clock } from '../util/clock';

export interface RunningApi {
  address: AddressInfo;
  close(): Promise<void>;
}

export interface StartApiOptions {
  config: ProviderConfig;
  service: ProviderService;
  store: LeaseStore;
  ledger: AllocationLedger;
  chainId: number;
  clock: Clock;
  log: Logger;
}

/** The provider API on api.host:api.port, tenant nonces kept in the store (replay protection survives restarts). */
export async function startApi(options: StartApiOptions): Promise<RunningApi> {
  const { config, store, clock, log } = options;
  const authenticator = new TenantAuthenticator({
    chainId: options.chainId,
    maxSignatureAgeSeconds: config.api.maxSignatureAgeSeconds,
    clock,
    nonces: new SqliteNonceLedger(store.db, () => Math.floor(clock.now() / 1000)),
  });
  const server = new ApiServer({ routes: [], authenticator, maxBodyBytes: config.api.maxBodyBytes, log: log.child({ component: 'api' }) });
  const address = await server.listen(config.api.host, config.api.port);
  return { address, close: () => server.close() };
}
