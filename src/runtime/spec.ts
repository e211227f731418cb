import { readFile } from 'node:fs/promises';
import type { ContainerCreateOptions } from 'dockerode';
import type { ProviderConfig } from '../config';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import { buildDeviceRequests, gpuEnv } from './gpu';
import type { Manifest } from './manifest';
import { LABELS, bridgeName, containerName, networkName } from './names';
import { RUNSC, SANDBOX_LABEL, runscHostTasks, type SandboxRuntime } from './sandbox';

/** What the capacity ledger granted a lease; the runtime enforces exactly this. */
export interface LeaseAllocation {
  leaseId: string;
  cpuMillis: number;
  memoryBytes: number;
  /** GPU-... or MIG-... UUIDs; as many as the manifest's gpus.count. */
  gpuUuids: string[];
  /** Host ports, one per manifest port in the same order, from runtime.portRange. */
  hostPorts: number[];
}

/** The create request; HostConfig.CgroupnsMode (API 1.41) is missing from @types/dockerode. */
export type ContainerSpec = ContainerCreateOptions & {
  name: string;
  HostConfig: NonNullable<ContainerCreateOptions['HostConfig']> & { CgroupnsMode?: 'private' | 'host' };
};

export type RuntimeSettings = Pick<ProviderConfig, 'runtime' | 'gpu'>;

/**
 * Capabilities a lease keeps; every other one (Docker's defaults included) is dropped.
 * - CHOWN, DAC_OVERRIDE, FOWNER: root inside the image owning and reading its own files; package
 *   managers and most entrypoints fail without them.
 * - SETUID, SETGID: entrypoints that drop from root to an unprivileged user (gosu, su-exec, nginx
 *   workers). With no-new-privileges nothing can gain privileges back through setuid binaries.
 * - KILL: a root supervisor signalling its workers that run under another uid.
 * - NET_BIND_SERVICE: servers listening on ports below 1024 inside the container's own namespace.
 * Dropped on purpose: NET_RAW (raw sockets: spoofing and ARP games on the bridge), MKNOD,
 * SYS_CHROOT, SETPCAP, SETFCAP, FSETID, AUDIT_WRITE.
 */
export const KEPT_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID', 'KILL', 'NET_BIND_SERVICE'] as const;

export interface SpecInput {
  manifest: Manifest;
  allocation: LeaseAllocation;
  /** The image to run: the id or digest reference the pull resolved, so a retag cannot swap it. */
  image: string;
  settings: RuntimeSettings;
  /** Where the lease's counters outlive its container: its own parent cgroup, and labels (the counters' baseline). */
  metering?: { cgroupParent: string; labels: Record<string, string> };
  /** The OCI runtime Sandbox.choose picked; runc (the engine's default runtime) when left out. */
  sandbox?: SandboxRuntime;
}

/**
 * The container a lease runs in, as the engine's create request. Pure: the same input gives the
 * same request, so every limit and security option is tested as a table without Docker.
 */
export function buildContainerSpec({ manifest, allocation, image, settings, metering, sandbox = 'runc' }: SpecInput): ContainerSpec {
  const { runtime, gpu } = settings;
  const { leaseId } = allocation;
  const ports = manifest.ports ?? [];
  if (allocation.gpuUuids.length !== manifest.resources.gpus.count) {
    throw new ProviderError(
      'ALLOCATION_INVALID',
      `lease ${leaseId} asks for ${manifest.resources.gpus.count} GPU(s) but was allocated ${allocation.gpuUuids.length}`,
      { input: allocation.gpuUuids },
    );
  }
  if (allocation.hostPorts.length !== ports.length) {
    throw new ProviderError('ALLOCATION_INVALID', `lease ${leaseId} exposes ${ports.length} port(s) but was allocated ${allocation.hostPorts.length} host port(s)`, {
      input: allocation.hostPorts,
    });
  }
  const outOfRange = allocation.hostPorts.find((p) => p < runtime.portRange.from || p > runtime.portRange.to);
  if (outOfRange !== undefined) {
    throw new ProviderError('ALLOCATION_INVALID', `host port ${outOfRange} is outside runtime.portRange ${runtime.portRange.from}-${runtime.portRange.to}`, {
      input: outOfRange,
    });
  }

  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  ports.forEach((port, i) => {
    const key = `${port.containerPort}/${port.protocol}`;
    exposed[key] = {};
    bindings[key] = [{ HostIp: '', HostPort: String(allocation.hostPorts[i]) }];
  });

  const env = [
    ...Object.entries(manifest.env ?? {}).map(([name, value]) => `${name}=${value}`),
    ...gpuEnv(allocation.gpuUuids, gpu.mode, gpu.driverCapabilities),
  ];

  const labels: Record<string, string> = {
    ...metering?.labels,
    [LABELS.managed]: 'true',
    [LABELS.leaseId]: leaseId,
    [LABELS.image]: manifest.image,
    [LABELS.bridge]: bridgeName(leaseId),
    // What the manifest asked of egress, so the rules can be rebuilt from the container alone.
    [LABELS.egress]: manifest.egress ?? 'public',
    [SANDBOX_LABEL]: sandbox,
  };
  if (manifest.resources.diskBytes !== undefined) labels[LABELS.diskBytes] = String(manifest.resources.diskBytes);
  if (allocation.gpuUuids.length > 0) labels[LABELS.gpuUuids] = allocation.gpuUuids.join(',');

  const scratch = `rw,nosuid,nodev,size=${runtime.tmpfsBytes}`;
  const spec: ContainerSpec = {
    name: containerName(leaseId),
    Image: image,
    Hostname: `lease-${leaseId}`.slice(0, 63),
    Env: env,
    Labels: labels,
    ExposedPorts: exposed,
    StopTimeout: runtime.stopTimeoutSeconds,
    AttachStdin: false,
    OpenStdin: false,
    Tty: false,
    NetworkDisabled: false,
    HostConfig: {
      // runc is left to the engine's default runtime, which a GPU set-up may have made nvidia's.
      ...(sandbox === 'runsc' ? { Runtime: RUNSC } : {}),
      NanoCpus: allocation.cpuMillis * 1_000_000,
      Memory: allocation.memoryBytes,
      // Equal to Memory: no swap, so the limit is the limit.
      MemorySwap: allocation.memoryBytes,
      PidsLimit: sandbox === 'runsc' ? runscHostTasks(runtime.pidsLimit) : runtime.pidsLimit,
      ShmSize: manifest.resources.shmBytes ?? runtime.defaultShmBytes,
      Ulimits: [
        { Name: 'nofile', Soft: runtime.nofileLimit, Hard: runtime.nofileLimit },
        // gVisor counts RLIMIT_NPROC inside its own kernel: a fork past pidsLimit gets EAGAIN there,
        // as under runc's pids cgroup, instead of the host cgroup killing the whole sandbox. Under
        // runc it would count the uid's processes on the whole host, so it is left out.
        ...(sandbox === 'runsc' ? [{ Name: 'nproc', Soft: runtime.pidsLimit, Hard: runtime.pidsLimit }] : []),
      ],
      // tini as PID 1: reaps zombies and forwards SIGTERM to workloads that ignore it as PID 1.
      Init: true,
      Privileged: false,
      CapDrop: ['ALL'],
      CapAdd: [...KEPT_CAPABILITIES],
      // No seccomp= entry: the engine's default profile stays on; unconfined is never asked for.
      SecurityOpt: ['no-new-privileges:true'],
      NetworkMode: networkName(leaseId),
      IpcMode: 'private',
      PidMode: '',
      UTSMode: '',
      UsernsMode: '',
      CgroupnsMode: 'private',
      Binds: [],
      Mounts: [],
      Devices: [],
      DeviceCgroupRules: [],
      DeviceRequests: buildDeviceRequests(allocation.gpuUuids, gpu.mode),
      PortBindings: bindings,
      PublishAllPorts: false,
      ReadonlyRootfs: runtime.readOnlyRootfs,
      ...(runtime.readOnlyRootfs ? { Tmpfs: { '/tmp': scratch, '/run': scratch } } : {}),
      ...(runtime.egress.dnsServers.length > 0 ? { Dns: [...runtime.egress.dnsServers] } : {}),
      ...(metering ? { CgroupParent: metering.cgroupParent } : {}),
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false,
      LogConfig: {
        Type: 'json-file',
        Config: { 'max-size': String(runtime.logMaxSize), 'max-file': String(runtime.logMaxFiles) },
      },
    },
  };
  if (manifest.command !== undefined) spec.Entrypoint = [...manifest.command];
  if (manifest.args !== undefined) spec.Cmd = [...manifest.args];
  return spec;
}

/**
 * runtime.nofileLimit, lowered to this host's hard open-files limit: without CAP_SYS_RESOURCE
 * (rootless, nested, some VPS kernels) runc cannot raise it above that and every start would fail
 * with "error setting rlimit type 7". Our own hard limit stands in for dockerd's (same host).
 */
export async function nofileCeiling(wanted: number, procRoot: string, log: Logger): Promise<number> {
  let ceiling = wanted;
  try {
    const limits = await readFile(`${procRoot}/self/limits`, 'utf8');
    const hard = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(limits)?.[1];
    if (hard !== undefined && hard !== 'unlimited') ceiling = Math.min(wanted, Number(hard));
  } catch {
    // Not Linux /proc: keep the configured value.
  }
  if (ceiling < wanted) log.warn({ configured: wanted, used: ceiling }, 'runtime.nofileLimit is above this host\'s hard open-files limit; using the host limit');
  return ceiling;
}
