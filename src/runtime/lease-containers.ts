import type Docker from 'dockerode';
import { ProviderError } from '../errors';
import type { PublishedPort } from './backend';
import { boundedCall, type CallBounds } from './bounded-call';
import { engineMessage, isEngineNotFound } from './docker-errors';
import { LABELS, containerName } from './names';

/** One of our containers as its labels describe it: the truth after a daemon restart. */
export interface LeaseContainer {
  leaseId: string;
  containerId: string;
  state: string;
  running: boolean;
  image: string;
  diskBytes: number | undefined;
  sizeRwBytes: number | undefined;
  egress: 'public' | 'none';
}

/** Everything the runtime creates, any instance's: narrow to one instance with `ownedBy`. */
export const MANAGED_FILTER = JSON.stringify({ label: [`${LABELS.managed}=true`] });

/**
 * Whether an object's labels say it is `instanceId`'s. One from before instances (no instance
 * label) is only when its lease is in `adopt`: a lease this daemon knows, so one it created itself.
 */
export function ownedBy(labels: Record<string, string> | undefined, instanceId: string, adopt?: ReadonlySet<string>): boolean {
  const owner = labels?.[LABELS.instance];
  if (owner !== undefined) return owner === instanceId;
  const leaseId = labels?.[LABELS.leaseId];
  return leaseId !== undefined && adopt?.has(leaseId) === true;
}

/** The lease containers of one instance (see ownedBy); another instance's are never seen here. */
export async function listLeaseContainers(
  docker: Docker,
  bounds: CallBounds,
  options: { size?: boolean; instanceId: string; adopt?: ReadonlySet<string> },
): Promise<LeaseContainer[]> {
  const containers = await boundedCall('listing the lease containers', bounds, (abortSignal) =>
    docker.listContainers({ all: true, size: options.size === true, filters: MANAGED_FILTER, abortSignal }),
  ).catch((err: unknown) => {
    if (err instanceof ProviderError) throw err;
    throw new ProviderError('DOCKER_REQUEST_FAILED', `could not list the lease containers: ${engineMessage(err)}`, { cause: err });
  });
  return containers
    .filter((c) => c.Labels?.[LABELS.leaseId] !== undefined && ownedBy(c.Labels, options.instanceId, options.adopt))
    .map((c) => {
      const disk = c.Labels[LABELS.diskBytes];
      return {
        leaseId: c.Labels[LABELS.leaseId] as string,
        containerId: c.Id,
        state: c.State,
        running: c.State === 'running',
        image: c.Labels[LABELS.image] ?? c.Image,
        diskBytes: disk === undefined ? undefined : Number(disk),
        egress: c.Labels[LABELS.egress] === 'none' ? ('none' as const) : ('public' as const),
        sizeRwBytes: (c as { SizeRw?: number }).SizeRw,
      };
    });
}

/** The lease's container as the engine sees it; CONTAINER_NOT_FOUND when it has none. */
export async function inspectLease(docker: Docker, leaseId: string, bounds: CallBounds): Promise<Docker.ContainerInspectInfo> {
  try {
    return await boundedCall(`inspecting lease ${leaseId}`, bounds, (abortSignal) => docker.getContainer(containerName(leaseId)).inspect({ abortSignal }));
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    if (isEngineNotFound(err)) throw leaseNotFound(leaseId);
    throw new ProviderError('DOCKER_REQUEST_FAILED', `could not inspect lease ${leaseId}: ${engineMessage(err)}`, { input: leaseId, cause: err });
  }
}

export function publishedPorts(info: Docker.ContainerInspectInfo): PublishedPort[] {
  const out: PublishedPort[] = [];
  const ports = (info.NetworkSettings?.Ports ?? {}) as Record<string, { HostIp: string; HostPort: string }[] | null>;
  for (const [key, bindings] of Object.entries(ports)) {
    const [port, protocol] = key.split('/');
    const binding = (bindings ?? []).find((b) => b.HostPort);
    if (!binding) continue;
    out.push({ containerPort: Number(port), protocol: protocol === 'udp' ? 'udp' : 'tcp', hostPort: Number(binding.HostPort) });
  }
  return out.sort((a, b) => a.containerPort - b.containerPort);
}

export function leaseNotFound(leaseId: string): ProviderError {
  return new ProviderError('CONTAINER_NOT_FOUND', `lease ${leaseId} has no container`, { input: leaseId });
}
