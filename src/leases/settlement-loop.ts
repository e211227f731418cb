import type { AllocationLedger } from '../capacity';
import { Wakeup, ZERO_BYTES32 } from '../chain';
import type { ProviderConfig } from '../config';
import { describeError } from '../errors';
import type { Logger } from '../log';
import type { SettlementRound, StepOutcome } from '../settlement';
import type { CheckpointSummary, Store, StoredLease } from '../store';
import type { Clock } from '../util/clock';
import { QUOTE_HOLD_GRACE_SECONDS, quoteHolder } from './admission';

/**
 * What the engine asks of settlement (the Settler is one): a checkpoint of a running lease, the
 * facts every lease's step in a round shares, one step of a lease's payment (a running lease's due
 * redeems and in-time claims; an ended lease's way to settled), and withdrawals.
 */
export interface LeaseSettlement {
  checkpoint(lease: StoredLease, options: { final: boolean }): Promise<unknown>;
  round(): Promise<SettlementRound>;
  step(lease: StoredLease, round: SettlementRound, resultDigest?: string): Promise<StepOutcome>;
  withdrawIfDue(): Promise<void>;
}

export interface SettlementLoopDeps {
  config: Pick<ProviderConfig, 'settlement'>;
  store: Store;
  ledger: AllocationLedger;
  settlement: LeaseSettlement;
  clock: Clock;
  log: Logger;
  /** A lease is settled on-chain: the engine finishes it (settlement-done, remove its workload). */
  onSettled: (lease: StoredLease, round: SettlementRound) => Promise<void>;
}

/** How often the loop looks at leases when nothing wakes it. */
const SETTLEMENT_TICK_MS = 1_000;

/** A running lease whose last step planned nothing: not stepped again before `until` (chain time) while its checkpoints stay `facts`. */
interface Quiet {
  facts: string;
  until: bigint | null;
}

/**
 * Checkpoints running leases on the interval and steps every settling lease towards settled; also
 * lets lapsed quote holds go and withdraws earnings when due.
 *
 * The cost of a round does not grow with chain reads per running lease: the facts every step
 * shares are read once a round (and only when some lease is stepped), and a running lease whose
 * last plan had nothing due is stepped again only when its checkpoints change or the time its plan
 * named comes (a lease with no checkpoint yet is read from the chain once).
 */
export class SettlementLoop {
  private readonly wakeup = new Wakeup();
  private readonly quiet = new Map<string, Quiet>();

  constructor(private readonly deps: SettlementLoopDeps) {}

  wake(): void {
    this.wakeup.wake();
  }

  async run(signal: AbortSignal): Promise<void> {
    const { store, settlement, log, clock } = this.deps;
    while (!signal.aborted) {
      try {
        const now = Math.floor(clock.now() / 1000);
        for (const nonce of store.quotes.expire(now - QUOTE_HOLD_GRACE_SECONDS)) this.deps.ledger.release(quoteHolder(nonce));
        const leases = store.leases.list({ states: ['running', 'settling'] });
        const summaries = store.checkpoints.summaries(leases.filter((l) => l.state === 'running').map((l) => l.leaseId));
        this.forgetAllBut(leases);
        let round: Promise<SettlementRound> | undefined;
        const roundOnce = (): Promise<SettlementRound> => (round ??= settlement.round());
        for (const lease of leases) {
          if (signal.aborted) break;
          if (lease.state === 'running') {
            await this.stepRunning(lease, summaries.get(lease.leaseId), now, roundOnce);
            continue;
          }
          const done = await roundOnce()
            .then(async (r) => ((await settlement.step(lease, r, lease.resultDigest ?? ZERO_BYTES32)).settled ? r : undefined))
            .catch((err: unknown) => {
              log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'settlement step failed; retrying');
              return undefined;
            });
          if (done) await this.deps.onSettled(lease, done);
        }
        await settlement.withdrawIfDue().catch((err: unknown) => log.warn({ err: describeError(err) }, 'withdraw check failed'));
      } catch (err) {
        if (!signal.aborted) log.error({ err: describeError(err) }, 'settlement round failed');
      }
      await this.wakeup.wait(SETTLEMENT_TICK_MS, signal).catch(() => undefined);
    }
  }

  private async stepRunning(lease: StoredLease, summary: CheckpointSummary | undefined, now: number, round: () => Promise<SettlementRound>): Promise<void> {
    const { store, settlement, log, config } = this.deps;
    const since = summary ? summary.latest.createdAt : (lease.startedAt ?? now);
    if (now - since >= config.settlement.checkpointIntervalSeconds) {
      await settlement.checkpoint(lease, { final: false });
      summary = store.checkpoints.summaries([lease.leaseId]).get(lease.leaseId);
    }
    const facts = factsOf(summary);
    const quiet = this.quiet.get(lease.leaseId);
    try {
      if (quiet?.facts === facts && (quiet.until === null || (await round()).now < quiet.until)) return;
      const outcome = await settlement.step(lease, await round());
      if (outcome.quietUntil === undefined) this.quiet.delete(lease.leaseId);
      else this.quiet.set(lease.leaseId, { facts, until: outcome.quietUntil });
    } catch (err) {
      this.quiet.delete(lease.leaseId);
      log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'payment step of a running lease failed; retrying');
    }
  }

  private forgetAllBut(leases: readonly StoredLease[]): void {
    if (this.quiet.size === 0) return;
    const running = new Set(leases.filter((l) => l.state === 'running').map((l) => l.leaseId));
    for (const leaseId of this.quiet.keys()) if (!running.has(leaseId)) this.quiet.delete(leaseId);
  }
}

/** What of a lease's checkpoints a plan depends on beyond time: a change means it is stepped again. */
function factsOf(summary: CheckpointSummary | undefined): string {
  if (!summary) return 'none';
  const { latest, countersigned } = summary;
  return `${latest.seq}:${latest.status}:${latest.tenantSig === null ? 0 : 1}:${countersigned}`;
}
