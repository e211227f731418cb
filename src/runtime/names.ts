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
} as const;

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

/** iptables chain names for a lease (at most 28 characters). */
export function leaseChains(leaseId: string): { forward: string; input: string } {
  const h = shortHash(assertLeaseId(leaseId));
  return { forward: `PROVIDER-F-${h}`, input: `PROVIDER-I-${h}` };
}

export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 12);
}
