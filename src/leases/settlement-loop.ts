import type { AllocationLedger } from '../capacity';
import { Wakeup, ZERO_BYTES32 } from '../chain';
import type { ProviderConfig } from '../config';
import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Store, StoredLease } from '../store';
import type { Clock } from '../util/clock';
import { QUOTE_HOLD_GRACE_SECONDS, quoteHolder } from './admission';

/**
 * What the engine asks of settlement (the Settler is one): a checkpoint of a running lease, one
 * step of a lease's payment (a running lease's due redeems and in-time claims; an ended lease's
 * way to settled, true once the chain says it is settled), and withdrawals.
 */
export interface LeaseSettlement {
  checkpoint(lease: StoredLease, options: { final: boolean }): Promise<unknown>;
  step(lease: StoredLease, resultDigest?: string): Promise<boolean>;
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
  onSettled: (lease: StoredLease) => Promise<void>;
}

/** How often the loop looks at leases when nothing wakes it. */
const SETTLEMENT_TICK_MS = 1_000;

/**
 * Checkpoints running leases on the interval and steps every settling lease towards settled; also
 * lets lapsed quote holds go and withdraws earnings when due.
 */
export class SettlementLoop {
  private readonly wakeup = new Wakeup();

  constructor(private readonly deps: SettlementLoopDeps) {}

  wake(): void {
    this.wakeup.wake();
  }

  async run(signal: AbortSignal): Promise<void> {
    const { store, settlement, log, config, clock } = this.deps;
    while (!signal.aborted) {
      try {
        const now = Math.floor(clock.now() / 1000);
        for (const nonce of store.quotes.expire(now - QUOTE_HOLD_GRACE_SECONDS)) this.deps.ledger.release(quoteHolder(nonce));
        for (const lease of store.leases.list({ states: ['running', 'settling'] })) {
          if (signal.aborted) break;
          if (lease.state === 'running') {
            const last = store.checkpoints.forLease(lease.leaseId).at(-1);
            const since = last ? last.createdAt : (lease.startedAt ?? now);
            if (now - since >= config.settlement.checkpointIntervalSeconds) await settlement.checkpoint(lease, { final: false });
            await settlement.step(lease).catch((err: unknown) => log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'payment step of a running lease failed; retrying'));
            continue;
          }
          const done = await settlement.step(lease, lease.resultDigest ?? ZERO_BYTES32).catch((err: unknown) => {
            log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'settlement step failed; retrying');
            return false;
          });
          if (done) await this.deps.onSettled(lease);
        }
        await settlement.withdrawIfDue().catch((err: unknown) => log.warn({ err: describeError(err) }, 'withdraw check failed'));
      } catch (err) {
        if (!signal.aborted) log.error({ err: describeError(err) }, 'settlement round failed');
      }
      await this.wakeup.wait(SETTLEMENT_TICK_MS, signal).catch(() => undefined);
    }
  }
}
