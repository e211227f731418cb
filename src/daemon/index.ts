export { Daemon, metadataOf, type DaemonInfo, type DaemonOptions } from './daemon';
export { EngineProviderService, checkpointView, type ProviderServiceDeps } from './provider-service';
export { leaseCounts, leaseDetail, leaseSummaries, storeEarnings, storedProvider } from './operator-views';
