import { createHash } from 'node:crypto';
import { ProviderError } from '../errors';

/** Labels every object the runtime creates carries; `list()` and reconcile select on them. */
export const LABELS = {
  managed: 'provider.managed',
  leaseId: 'provider.lease-id',
  image: 'provider.image',
  diskBytes: 'provider.disk-bytes',
  gpuUuids: 'provider.gpu-uuids',
  bridge: 'provider.bridge',
  egress: 'provider.egress',
  /** The daemon instance that created the object: no other instance touches it while that one lives. */
  instance: 'provider.instance',
} as const;

/**
 * A daemon instance's id (the store's `instance-id`, `p` + 8 hex digits): short and plain, since
 * it is part of every iptables chain name the instance creates (28 characters at most).
 */
const INSTANCE_ID = /^[a-z0-9]{1,10}$/;

/** The instance of runtimes built without one (benches, tests): daemons always pass the store's. */
export const DEFAULT_INSTANCE_ID = 'local';

export function assertInstanceId(instanceId: string): string {
  if (!INSTANCE_ID.test(instanceId)) {
    throw new ProviderError('ALLOCATION_INVALID', `instance id "${instanceId.slice(0, 40)}" is not 1-10 characters of [a-z0-9]`, { input: instanceId.slice(0, 40) });
  }
  return instanceId;
}

const LEASE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** Lease ids become Docker names and iptables comments: only a safe alphabet is accepted. */
export function assertLeaseId(leaseId: string): string {
  if (!LEASE_ID.test(leaseId)) {
    throw new ProviderError('ALLOCATION_INVALID', `lease id "${leaseId.slice(0, 120)}" is not usable as a container name`, {
      input: leaseId.slice(0, 120),
      fix: 'use 1-100 characters of [A-Za-z0-9_.-], starting with a letter or digit',
    });
  }
  return leaseId;
}

export function containerName(leaseId: string): string {
  return `provider-lease-${assertLeaseId(leaseId)}`;
}

export function networkName(leaseId: string): string {
  return `provider-lease-${assertLeaseId(leaseId)}`;
}

/**
 * The Linux bridge of a lease's network. We name it ourselves (`com.docker.network.bridge.name`)
 * so the firewall keys on a name known before the network exists and after a daemon restart,
 * without asking Docker. Interface names are at most 15 bytes: "pvl" + 12 hex digits of a hash.
 */
export function bridgeName(leaseId: string): string {
  return `pvl${shortHash(assertLeaseId(leaseId))}`;
}

/**
 * iptables chain names for a lease of an instance, `PV-<instance>-F-<hash>` (at most 28
 * characters): the owner is read off the name, since chains carry no labels.
 */
export function leaseChains(leaseId: string, instanceId: string): { forward: string; input: string } {
  const h = shortHash(assertLeaseId(leaseId));
  const i = assertInstanceId(instanceId);
  return { forward: `PV-${i}-F-${h}`, input: `PV-${i}-I-${h}` };
}

/** Chain names of daemons from before instances (`PROVIDER-F-<hash>`): removed with their lease. */
export function legacyLeaseChains(leaseId: string): { forward: string; input: string } {
  const h = shortHash(assertLeaseId(leaseId));
  return { forward: `PROVIDER-F-${h}`, input: `PROVIDER-I-${h}` };
}

/** A lease chain's name, split: its instance (undefined for a legacy chain) and its lease hash. */
export function parseChainName(chain: string): { instanceId: string | undefined; hash: string } | undefined {
  const m = /^PV-([a-z0-9]{1,10})-[FI]-([0-9a-f]{12})$/.exec(chain) ?? /^PROVIDER-[FI]-([0-9a-f]{12})$/.exec(chain);
  if (!m) return undefined;
  return m.length === 3 ? { instanceId: m[1] as string, hash: m[2] as string } : { instanceId: undefined, hash: m[1] as string };
}

export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}
