import { outcomeOf, payableTo } from '../chain';
import { TERMINAL_STATES, type LeaseEngine, type LeaseState } from '../leases';
import type { Logger } from '../log';
import { claimKey, redeemKey } from '../settlement';
import type { Store } from '../store';
import type { Clock } from '../util/clock';
import { sleep } from '../util/sleep';
import { LIVE_STATES } from '../vocabulary';

export interface DrainOptions {
  /** How long running leases may go on before they are ended (operator-drain) and billed. */
  timeoutSeconds: number;
  /** Aborting skips what is left of the drain: leases not yet ended keep running. */
  signal?: AbortSignal;
  /** Told what the drain waits for, when that changes. */
  onProgress?: (message: string) => void;
}

export interface DrainResult {
  /** Leases that ended by themselves during the drain. */
  finished: string[];
  /** Leases the drain ended (operator-drain). */
  ended: string[];
  /** Ended leases whose final payment is on-chain (redeemed or claimed). */
  billed: string[];
  /** Leases still running or not yet billed when the drain gave up: the next start goes on with them. */
  left: string[];
}

export interface DrainDeps {
  engine: LeaseEngine;
  store: Store;
  clock: Clock;
  log: Logger;
  /** How long billing the ended leases may take. */
  settlementBound: () => number;
}

/** States in which a lease still runs, or is about to: a drain waits for these to end. */
const DRAINABLE: ReadonlySet<LeaseState> = new Set<LeaseState>(['quoted', 'pulling', 'starting', 'running']);
const DRAIN_POLL_MS = 500;

/**
 * SIGTERM with a drain timeout: no new quotes; running leases get `timeoutSeconds` to finish by
 * themselves, then are ended (operator-drain); then waits, bounded, until every one of them is
 * billed (final checkpoint redeemed or claimed on-chain). The API stays up meanwhile, so tenants
 * can still read logs and countersign. What is left when a bound passes goes on at the next start.
 */
export async function drainLeases(deps: DrainDeps, { timeoutSeconds, signal, onProgress }: DrainOptions): Promise<DrainResult> {
  const { engine, store, clock, log } = deps;
  engine.stopAccepting();
  const say = (message: string, fields: Record<string, unknown> = {}): void => {
    log.info(fields, message);
    onProgress?.(message);
  };
  const active = (): string[] => store.leases.list({ states: [...DRAINABLE] }).map((l) => l.leaseId);
  const pause = async (): Promise<boolean> => {
    try {
      await sleep(DRAIN_POLL_MS, signal);
      return true;
    } catch {
      return false;
    }
  };
  const started = active();
  const tracked = new Set([...started, ...store.leases.list({ states: LIVE_STATES }).map((l) => l.leaseId)]);
  say(`draining: no new quotes; ${started.length} lease(s) running get ${timeoutSeconds} s to finish before they are ended and billed`, {
    leases: started.length,
    timeoutSeconds,
  });
  const deadline = clock.now() + timeoutSeconds * 1000;
  let running = started;
  while (running.length > 0 && clock.now() < deadline && !signal?.aborted) {
    if (!(await pause())) break;
    running = active();
    for (const id of running) tracked.add(id);
  }
  const ended = signal?.aborted ? [] : active();
  if (ended.length > 0) {
    say(`drain timeout: ending ${ended.length} lease(s) (operator-drain) and billing them`, { leases: ended });
    await engine.drain();
  }
  const billDeadline = clock.now() + deps.settlementBound();
  let unbilled = [...tracked].filter((id) => !isBilled(store, id));
  if (unbilled.length > 0 && !signal?.aborted) say(`waiting for ${unbilled.length} lease(s) to be billed on-chain`, { leases: unbilled });
  while (unbilled.length > 0 && clock.now() < billDeadline && !signal?.aborted) {
    if (!(await pause())) break;
    unbilled = unbilled.filter((id) => !isBilled(store, id));
  }
  const notFinished = new Set([...ended, ...active()]);
  const billed = new Set([...tracked].filter((id) => isBilled(store, id)));
  const result: DrainResult = {
    finished: [...tracked].filter((id) => !notFinished.has(id)),
    ended,
    billed: [...billed],
    left: [...tracked].filter((id) => !billed.has(id)),
  };
  if (result.left.length > 0) {
    log.warn({ leases: result.left }, 'drain: some leases are not billed yet; the next start goes on with them');
  }
  say(`drained: ${result.finished.length} finished, ${result.ended.length} ended, ${result.billed.length} billed, ${result.left.length} left for the next start`, {
    ...result,
  });
  return result;
}

/** True once an ended lease's final payment is on-chain, or it had nothing to bill. */
function isBilled(store: Store, leaseId: string): boolean {
  const lease = store.leases.get(leaseId);
  if (!lease || TERMINAL_STATES.has(lease.state) || lease.endReason === 'refused') return true;
  const final = store.checkpoints.forLease(leaseId).at(-1);
  if (!final) return lease.state === 'settling' && store.usage.forLease(leaseId).length === 0;
  if (!final.final) return false;
  if (final.status === 'final' || final.cumulativeAmount === 0n) return true;
  // Billed once a redeem or claim of a checkpoint paying as much as the final one is on-chain (an
  // earlier one may already have). Not by the close: the settler closes an ended lease at once,
  // before its final checkpoint's countersign grace and claim.
  const owed = payableTo(final.cumulativeAmount, lease.deposit);
  const confirmed = (key: string): boolean => {
    const entry = store.outbox.byKey(key);
    return entry !== undefined && outcomeOf(entry)?.state === 'confirmed';
  };
  return store.checkpoints
    .forLease(leaseId)
    .some((cp) => payableTo(cp.cumulativeAmount, lease.deposit) >= owed && (confirmed(redeemKey(leaseId, cp.seq)) || confirmed(claimKey(leaseId, cp.seq))));
}
