/**
 * The runtime module: everything the daemon does with the Docker engine. Other modules import
 * from here only.
 */
export { manifestSchema, parseManifest, registryAuthSchema, portSchema, resourcesSchema } from './manifest';
export type { Manifest, ManifestInput, ManifestPort, RegistryAuth } from './manifest';
export { buildContainerSpec, KEPT_CAPABILITIES } from './spec';
export type { LeaseAllocation, RuntimeSettings, ContainerSpec, SpecInput } from './spec';
export { buildDeviceRequests, gpuEnv, assertGpuUuids } from './gpu';
export type { GpuMode, DeviceRequest } from './gpu';
export { Firewall, BLOCKED_V4, BLOCKED_V6 } from './firewall';
export { FirewallWatch } from './firewall-watch';
export { InstanceRegistry, judgeOwner } from './instance';
export type { InstanceRecord, OwnerVerdict, HostFacts } from './instance';
export { OrphanCollector } from './orphans';
export type { Collected } from './orphans';
export { SubnetPool } from './subnet-pool';
export type { LeaseFirewallSpec } from './firewall';
export { ImageService, diskSpace, diskUsedPercent } from './images';
export type { PullProgress, PreparedImage, PrepareOptions, ImageSettings } from './images';
export { ImageResolver, type ResolvedImage, type ResolveOptions } from './image-resolver';
export { parseImageRef, imageMatches } from './image-ref';
export { checkImagePolicy } from './image-policy';
export type { ImagePolicy } from './image-policy';
export { LeaseRuntime } from './lease-runtime';
export { DockerBackend } from './docker-backend';
export type { DockerBackendDeps, PidCounterReader } from './docker-backend';
export { MemoryBackend } from './memory-backend';
export type { MemoryBackendOptions, MemoryProgram } from './memory-backend';
export { createDockerClient } from './docker-client';
export type { StartLeaseInput, StartedLease, LimitCounters, LeaseRuntimeDeps } from './lease-runtime';
export type { LeaseContainer } from './lease-containers';
export type {
  LeaseBackend,
  StopReason,
  ExitReason,
  PublishedPort,
  PreparedWorkload,
  StartedWorkload,
  ExitReport,
  WorkloadStatus,
  WorkloadCounters,
  ObservedWorkload,
  ReconcileResult,
  ExecResult,
  ExecSession,
  ExecSessionInput,
  TerminalSize,
  BackendEvent,
  Signalled,
  PrepareInput,
  StartInput,
} from './backend';
export { leaseLogs, streamLogs } from './logs';
export { LogArchive, logArchiveDirFor, type ArchiveEntry, type LineDigest, type LogArchiveDeps, type LogArchiveSettings } from './log-archive';
export type { LogLine, LogOptions, LogReaderContext } from './logs';
export type { RuntimeEvent } from './events';
export { pickHostPorts } from './ports';
export { LABELS, DEFAULT_INSTANCE_ID, containerName, networkName, bridgeName, leaseChains } from './names';
export { isEngineNotFound, containerError } from './docker-errors';
export { Sandbox, chooseSandbox, describeSandbox, sandboxSupport, refuseUnsandboxableLease, RUNSC, SANDBOX_LABEL, INSTALL_RUNSC_FIX } from './sandbox';
export type { SandboxSetting, SandboxRuntime, SandboxSupport, SandboxChoice, SandboxReport, RuntimesSource } from './sandbox';
