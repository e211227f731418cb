import { getAddress } from 'ethers';
import { wire, type EarningsView, type GpuReadingView, type OperatorLeaseDetail, type OperatorLeaseSummary } from '../api';
import { ProviderError } from '../errors';
import type { EndReason, LeaseState } from '../leases';
import { TERMINAL_STATES } from '../vocabulary';
import { containerName } from '../runtime';
import { WITHDRAW_KEY_PREFIX } from '../settlement';
import type { Store, StoredCheckpoint, StoredLease } from '../store';

/**
 * The operator's views of the store, built the same way whether the daemon serves them or a
 * command reads the store of a stopped daemon: one source for both, so they cannot drift.
 */

export function leaseCounts(store: Store): Record<LeaseState, number> {
  const counts = store.leases.countByState();
  return Object.fromEntries(wire.LEASE_STATES.map((s) => [s, counts[s] ?? 0])) as Record<LeaseState, number>;
}

export function leaseSummaries(store: Store): OperatorLeaseSummary[] {
  return store.leases.list().map((lease) => summary(store, lease, store.checkpoints.forLease(lease.leaseId)));
}

export function leaseDetail(store: Store, leaseId: string): OperatorLeaseDetail {
  const lease = /^\d{1,78}$/.test(leaseId) ? store.leases.get(BigInt(leaseId).toString()) : undefined;
  if (!lease) throw new ProviderError('LEASE_NOT_FOUND', `no lease ${leaseId.slice(0, 80)} with this provider`, { input: leaseId.slice(0, 80) });
  const checkpoints = store.checkpoints.forLease(lease.leaseId);
  return {
    ...summary(store, lease, checkpoints),
    deposit: lease.deposit,
    allocation: lease.allocation,
    maxDurationSeconds: lease.maxDuration,
    exitCode: lease.exitCode,
    closedAt: lease.closedAt,
    chainSettled: TERMINAL_STATES.has(lease.state),
    transitions: store.leases.transitions(lease.leaseId).map((t) => ({ from: t.fromState, to: t.toState, event: t.event, reason: t.reason, at: t.at })),
    checkpoints: checkpoints.map((cp) => ({
      seq: Number(cp.seq),
      cumulativeAmount: cp.cumulativeAmount,
      periodEnd: Number(cp.periodEnd),
      status: cp.status,
      final: cp.final,
      countersigned: cp.tenantSig !== null,
    })),
    gpus: store.usage.latestGpu(lease.leaseId),
  };
}

/** The latest reading of every GPU a running lease holds: what /metrics exports. */
export function runningGpuReadings(store: Store): GpuReadingView[] {
  return store.leases.list({ states: ['running', 'stopping'] }).flatMap((lease) => store.usage.latestGpu(lease.leaseId));
}

/**
 * Earnings as the store knows them: per lease, what its checkpoints ask and what the chain has
 * paid (its latest checkpoint with status final); withdrawals from the Withdrawn events the
 * follower counted. `chainPaid` replaces the store's paid figure with the chain's own.
 */
export function storeEarnings(store: Store, chainPaid: ReadonlyMap<string, bigint> = new Map()): EarningsView {
  let claimedPending = 0n;
  const leases: EarningsView['leases'] = [];
  for (const lease of store.leases.list()) {
    const checkpoints = store.checkpoints.forLease(lease.leaseId);
    const last = checkpoints.at(-1);
    if (!last) continue;
    const paid = chainPaid.get(lease.leaseId) ?? maxAmount(checkpoints.filter((cp) => cp.status === 'final'));
    const claimed = maxAmount(checkpoints.filter((cp) => cp.status === 'claimed'));
    if (claimed > paid) claimedPending += claimed - paid;
    leases.push({ leaseId: lease.leaseId, state: lease.state as LeaseState, earned: last.cumulativeAmount, checkpoint: last.status, paid });
  }
  const open = store.outbox.openWithPrefix(WITHDRAW_KEY_PREFIX);
  return {
    provider: storedProvider(store),
    token: null,
    withdrawable: null,
    payout: null,
    claimedPending,
    withdrawn: BigInt(store.meta.get('withdrawn-total') ?? '0'),
    balance: null,
    withdrawal: open ?? null,
    leases,
  };
}

/** The provider address of a store: the sender of its transactions (registration is the first). */
export function storedProvider(store: Store): string | null {
  const sender = store.outbox.firstSender();
  return sender ? getAddress(sender) : null;
}

function summary(store: Store, lease: StoredLease, checkpoints: StoredCheckpoint[]): OperatorLeaseSummary {
  const quote = lease.quoteNonce ? store.quotes.get(lease.quoteNonce) : undefined;
  const image = quote && typeof quote.manifest.image === 'string' ? quote.manifest.image : null;
  const last = checkpoints.at(-1);
  return {
    leaseId: lease.leaseId,
    tenant: lease.tenant,
    state: lease.state as LeaseState,
    endReason: (lease.endReason ?? null) as EndReason | null,
    image,
    container: containerName(lease.runtimeId),
    openedAt: lease.openedAt,
    startedAt: lease.startedAt,
    endedAt: lease.endedAt,
    earned: last?.cumulativeAmount ?? 0n,
    lastCheckpoint: last ? { seq: Number(last.seq), status: last.status, final: last.final, countersigned: last.tenantSig !== null } : null,
    detail: lease.detail,
  };
}

function maxAmount(checkpoints: StoredCheckpoint[]): bigint {
  return checkpoints.reduce((max, cp) => (cp.cumulativeAmount > max ? cp.cumulativeAmount : max), 0n);
}
