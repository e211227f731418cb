import type { CapacityView, EarningsHistory, GpuHealthStatusView, OperatorHistoryService, RecentError, RecentErrors } from '../api';
import type { AllocationLedger, CapacityReport } from '../capacity';
import type { EndReason } from '../leases';
import { closeKey, finalizeKey, parseSettlementKey, redeemKey, settleKey } from '../settlement';
import type { Store, StoredCheckpoint, StoredLease } from '../store';
import { runningGpuReadings } from './operator-views';

/** The most points and errors one answer carries; the page shows the latest. */
const MAX_POINTS = 5_000;
const MAX_ERRORS = 50;

export interface StoreOperatorHistoryDeps {
  store: Store;
  ledger: AllocationLedger;
  /** The capacity found at start: what is offered, and each GPU's readings then. Without it, the free GPUs only. */
  report?: CapacityReport;
  /** The health monitor's view of each GPU; without it, no health is shown. */
  gpuHealth?: () => GpuHealthStatusView[];
}

/** The dashboard's views, from the allocation ledger and the store (src/api/operator-history-routes.ts). */
export class StoreOperatorHistory implements OperatorHistoryService {
  constructor(private readonly deps: StoreOperatorHistoryDeps) {}

  capacity(): CapacityView {
    const { ledger, report } = this.deps;
    const free = ledger.free();
    const held = ledger.list();
    const holderOf = new Map<string, { kind: 'quote' | 'lease'; holder: string }>();
    for (const allocation of held) for (const uuid of allocation.gpuUuids) holderOf.set(uuid, { kind: allocation.kind, holder: allocation.holder });
    const allocated = {
      cpuMillis: held.reduce((sum, a) => sum + a.cpuMillis, 0),
      memoryBytes: held.reduce((sum, a) => sum + a.memoryBytes, 0),
      diskBytes: held.reduce((sum, a) => sum + a.diskBytes, 0),
      gpus: held.reduce((sum, a) => sum + a.gpuUuids.length, 0),
    };
    const freeFigures = { cpuMillis: free.cpuMillis, memoryBytes: free.memoryBytes, diskBytes: free.diskBytes, gpus: free.gpus.length };
    const devices = report?.gpus.ok ? report.gpus.devices : [];
    const units = report?.allocatable.gpus ?? free.gpus;
    const health = new Map((this.deps.gpuHealth?.() ?? []).map((gpu) => [gpu.uuid, gpu]));
    // What leases' GPUs do now (the meter's latest readings) beats what they did at start.
    const live = new Map(runningGpuReadings(this.deps.store).map((reading) => [reading.uuid, reading]));
    return {
      total: {
        cpuMillis: freeFigures.cpuMillis + allocated.cpuMillis,
        memoryBytes: freeFigures.memoryBytes + allocated.memoryBytes,
        diskBytes: freeFigures.diskBytes + allocated.diskBytes,
        gpus: report ? units.length : freeFigures.gpus + allocated.gpus,
      },
      allocated,
      free: freeFigures,
      holders: { quotes: held.filter((a) => a.kind === 'quote').length, leases: held.filter((a) => a.kind === 'lease').length },
      gpus: units.map((unit) => {
        const device = devices.find((d) => d.uuid === unit.gpuUuid);
        // A MIG device's readings are its GPU's: nvidia-smi reports utilisation per physical GPU.
        return {
          uuid: unit.uuid,
          kind: unit.kind,
          index: unit.gpuIndex,
          model: unit.model,
          profile: unit.profile,
          memoryBytes: unit.memoryBytes,
          heldBy: holderOf.get(unit.uuid) ?? holderOf.get(unit.gpuUuid) ?? null,
          health: healthText(health.get(unit.gpuUuid)),
          utilizationPercent: liveUtilization(live.get(unit.uuid)) ?? device?.utilization.gpuPercent ?? null,
          memoryUsedBytes: live.get(unit.uuid)?.memoryUsedBytes ?? device?.memory.usedBytes ?? null,
        };
      }),
      gpusNotOffered: (report?.allocatable.gpusNotOffered ?? []).map((gpu) => ({ index: gpu.gpuIndex, model: gpu.model, reason: gpu.reason, detail: gpu.detail })),
      readAt: report && devices.length > 0 ? report.detectedAt : null,
    };
  }

  earningsHistory(): EarningsHistory {
    const { store } = this.deps;
    const events: { at: number; leaseId: string; earned?: bigint; paid?: bigint }[] = [];
    for (const lease of store.leases.list()) {
      const checkpoints = store.checkpoints.forLease(lease.leaseId);
      const paidAt = this.paymentTimes(lease, checkpoints);
      for (const cp of checkpoints) {
        events.push({ at: cp.createdAt, leaseId: lease.leaseId, earned: cp.cumulativeAmount });
        if (cp.status === 'final') events.push({ at: paidAt(cp), leaseId: lease.leaseId, paid: cp.cumulativeAmount });
      }
    }
    return { points: runningTotals(events).slice(-MAX_POINTS) };
  }

  recentErrors(): RecentErrors {
    const { store } = this.deps;
    const errors: RecentError[] = [];
    for (const entry of store.outbox.failed()) {
      const key = parseSettlementKey(entry.key);
      const code = entry.errorCode ?? 'TX_REVERTED';
      errors.push({
        at: Math.floor(entry.updatedAt / 1000),
        source: 'transaction',
        code,
        message: `${key?.kind ?? 'transaction'} (${entry.key}) ${entry.state}${entry.error ? `: ${entry.error}` : ''}`,
        fix: TRANSACTION_FIXES[code] ?? null,
        leaseId: key && 'leaseId' in key ? key.leaseId.toString() : null,
      });
    }
    for (const lease of store.leases.list()) {
      const reason = lease.endReason;
      if (lease.state !== 'failed' && !(reason && reason in LEASE_FIXES)) continue;
      const last = store.leases.transitions(lease.leaseId).at(-1);
      errors.push({
        at: last?.at ?? lease.endedAt ?? lease.openedAt,
        source: 'lease',
        code: reason ?? 'failed',
        message: `lease ${lease.leaseId} ${lease.state}${lease.detail ? `: ${lease.detail}` : ''}`,
        fix: (reason && LEASE_FIXES[reason]) ?? `\`provider leases ${lease.leaseId}\` shows its history; the daemon's log has the details`,
        leaseId: lease.leaseId,
      });
    }
    errors.sort((a, b) => b.at - a.at);
    return { errors: errors.slice(0, MAX_ERRORS) };
  }

  /**
   * When the chain paid each checkpoint: the first confirmed redeem or finalize of it or of a later
   * one (amounts are cumulative: paying a later checkpoint pays this one), else the lease's close or
   * settlement, else its move to settled, else (a payment seen without our transaction) its signing.
   */
  private paymentTimes(lease: StoredLease, checkpoints: readonly StoredCheckpoint[]): (cp: StoredCheckpoint) => number {
    const { store } = this.deps;
    const confirmedAt = (key: string): number | undefined => {
      const entry = store.outbox.byKey(key);
      return entry?.state === 'confirmed' ? Math.floor(entry.updatedAt / 1000) : undefined;
    };
    const payments = checkpoints.flatMap((cp) =>
      [confirmedAt(redeemKey(lease.leaseId, cp.seq)), confirmedAt(finalizeKey(lease.leaseId, cp.seq))].flatMap((at) => (at === undefined ? [] : [{ seq: cp.seq, at }])),
    );
    const settledAt = confirmedAt(closeKey(lease.leaseId)) ?? confirmedAt(settleKey(lease.leaseId)) ?? store.leases.transitions(lease.leaseId).find((t) => t.toState === 'settled')?.at;
    return (cp) => {
      const covering = payments.filter((p) => p.seq >= cp.seq).map((p) => p.at);
      return covering.length > 0 ? Math.min(...covering) : (settledAt ?? cp.createdAt);
    };
  }
}

/** Each lease's latest earned and paid amounts summed after every event, in time order. */
export function runningTotals(events: readonly { at: number; leaseId: string; earned?: bigint; paid?: bigint }[]): EarningsHistory['points'] {
  const sorted = [...events].sort((a, b) => a.at - b.at);
  const earned = new Map<string, bigint>();
  const paid = new Map<string, bigint>();
  let earnedTotal = 0n;
  let paidTotal = 0n;
  const points: EarningsHistory['points'] = [];
  for (const event of sorted) {
    if (event.earned !== undefined && event.earned > (earned.get(event.leaseId) ?? 0n)) {
      earnedTotal += event.earned - (earned.get(event.leaseId) ?? 0n);
      earned.set(event.leaseId, event.earned);
    }
    if (event.paid !== undefined && event.paid > (paid.get(event.leaseId) ?? 0n)) {
      paidTotal += event.paid - (paid.get(event.leaseId) ?? 0n);
      paid.set(event.leaseId, event.paid);
    }
    const last = points.at(-1);
    // One point per second: events in the same second fold into its last figures.
    if (last && last.at === event.at) {
      last.earned = earnedTotal;
      last.paid = paidTotal;
    } else points.push({ at: event.at, earned: earnedTotal, paid: paidTotal });
  }
  return points;
}

const TRANSACTION_FIXES: Readonly<Record<string, string>> = {
  TX_REVERTED: "the marketplace refused it: `provider leases <id>` shows the lease's checkpoints, and the daemon's log the revert reason",
  TX_REJECTED: 'the node would not take it: check that the provider account holds gas and that the RPC answers (`provider doctor`)',
  TX_NONCE_TAKEN: 'another program sends with the provider key: give the daemon a key of its own',
};

const LEASE_FIXES: Readonly<Partial<Record<EndReason, string>>> = {
  'pull-failed': 'the image could not be pulled: check that this machine reaches the registry and the image size limit (runtime.images.maxSizeBytes); `provider doctor` checks Docker',
  'start-failed': 'the container did not start: `provider leases <id>` shows why; `provider doctor` checks Docker and the sandbox runtime',
  'container-vanished': 'something outside the daemon removed the container: keep `docker prune` and similar tools away from provider-lease-* containers',
};

function healthText(gpu: GpuHealthStatusView | undefined): string | null {
  if (!gpu) return null;
  if (gpu.status === 'healthy') return 'healthy';
  return `${gpu.status === 'recovering' ? 'recovering' : 'UNHEALTHY'}: ${gpu.reason ?? 'unknown'}`;
}

function liveUtilization(reading: { utilization: number | null } | undefined): number | null {
  return reading?.utilization == null ? null : Math.round(reading.utilization * 100);
}
