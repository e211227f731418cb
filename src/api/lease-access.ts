import { z } from 'zod';
import type { ExecSession, ExecSessionInput, Signalled } from '../runtime';
import type { AccessTokenRepository, ExecAuditRepository } from '../store';

/** A running lease as its tenant may reach it through the API port. */
export interface AccessibleLease {
  leaseId: string;
  runtimeId: string;
  tenant: string;
  /** The manifest's `ports`: the only ports of the lease the API connects to. */
  ports: { containerPort: number; protocol: 'tcp' | 'udp' }[];
}

/**
 * The leases a tenant may open a shell in or reach the ports of, as the daemon's store knows
 * them. Implemented in the daemon layer; a lookup, never a wait.
 */
export interface LeaseDirectory {
  /** LEASE_NOT_FOUND; AUTH_FORBIDDEN when it is another tenant's; CONTAINER_NOT_RUNNING unless it runs. */
  accessible(leaseId: string, tenant: string): AccessibleLease;
}

/** What the shell, the port proxy and the tunnels ask of the lease backend. */
export interface WorkloadDoor {
  openExec(runtimeId: string, input: ExecSessionInput): Promise<ExecSession>;
  address(runtimeId: string, options?: Signalled): Promise<string>;
}

export type ExecAudit = Pick<ExecAuditRepository, 'start' | 'end'>;
export type AccessTokenStore = Pick<AccessTokenRepository, 'insert' | 'get' | 'liveForLease' | 'revoke'>;

/** The `access` config section, as the API uses it. */
export interface AccessSettings {
  exec: { maxSessionsPerLease: number; idleTimeoutSeconds: number };
  tokens: { maxTtlSeconds: number; maxPerLease: number };
  proxy: { connectTimeoutMs: number; responseTimeoutMs: number; idleTimeoutMs: number; maxRequestBodyBytes: number; maxConnectionsPerLease: number };
}

/** Counts what is open per lease against a bound (shells, tunnels). */
export class PerLeaseSlots {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: () => number) {}

  /** True when a slot was free and is now taken. */
  take(leaseId: string): boolean {
    const n = this.open.get(leaseId) ?? 0;
    if (n >= this.max()) return false;
    this.open.set(leaseId, n + 1);
    return true;
  }

  release(leaseId: string): void {
    const n = (this.open.get(leaseId) ?? 1) - 1;
    if (n <= 0) this.open.delete(leaseId);
    else this.open.set(leaseId, n);
  }

  count(leaseId: string): number {
    return this.open.get(leaseId) ?? 0;
  }
}

/** A container port in a path: 1-65535, decimal. */
export const portParam = z.string().regex(/^[1-9][0-9]{0,4}$/, 'expected a port (1-65535)').transform(Number).pipe(z.number().int().max(65_535));
