import { getAddress } from 'ethers';
import type { AccessibleLease, LeaseDirectory } from '../api';
import { ProviderError } from '../errors';
import type { Store } from '../store';

/**
 * Which leases a tenant may open a shell in or reach the ports of, from the store: the lease's
 * tenant, while the lease runs, and only the ports its manifest (as quoted) published. Read at
 * each request, so it holds after a restart with nothing to rebuild.
 */
export class StoreLeaseDirectory implements LeaseDirectory {
  constructor(private readonly store: Store) {}

  accessible(leaseId: string, tenant: string): AccessibleLease {
    const lease = /^\d{1,78}$/.test(leaseId) ? this.store.leases.get(BigInt(leaseId).toString()) : undefined;
    if (!lease) throw new ProviderError('LEASE_NOT_FOUND', `no lease ${leaseId.slice(0, 80)} with this provider`, { input: leaseId.slice(0, 80) });
    if (getAddress(lease.tenant) !== getAddress(tenant)) {
      throw new ProviderError('AUTH_FORBIDDEN', `lease ${lease.leaseId} belongs to another tenant`, { input: lease.leaseId });
    }
    if (lease.state !== 'running') {
      throw new ProviderError('CONTAINER_NOT_RUNNING', `lease ${lease.leaseId} is ${lease.state}, not running`, {
        input: lease.leaseId,
        fix: lease.state === 'pulling' || lease.state === 'starting' ? 'wait until the lease is running' : 'open a new lease',
      });
    }
    const quote = lease.quoteNonce ? this.store.quotes.get(lease.quoteNonce) : undefined;
    const asked = (quote?.manifest.ports as { containerPort: number; protocol?: 'tcp' | 'udp' }[] | undefined) ?? [];
    return {
      leaseId: lease.leaseId,
      runtimeId: lease.runtimeId,
      tenant: getAddress(lease.tenant),
      ports: asked.map((p) => ({ containerPort: p.containerPort, protocol: p.protocol ?? 'tcp' })),
    };
  }
}
