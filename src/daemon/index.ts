export { Daemon, type DaemonInfo, type DaemonOptions } from './daemon';
export { metadataOf } from './registration';
export { type DrainOptions, type DrainResult } from './drain';
export { EngineProviderService, checkpointView, type ProviderServiceDeps } from './provider-service';
export { leaseCounts, leaseDetail, leaseSummaries, storeEarnings, storedProvider } from './operator-views';
