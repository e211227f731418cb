import { payableTo } from '../chain';

/**
 * Settlement as a plan: given one lease's facts (its checkpoints, what the chain holds for it, the
 * time, the marketplace's windows), the chain actions due now. Pure: no I/O, tested as a table
 * (test/unit/settlement/planner.test.ts); the Settler reads the facts and runs the actions through
 * the outbox, under the keys of ./outbox-keys.ts, so an action planned twice is sent once.
 */

/** A checkpoint as the plan needs it (a StoredCheckpoint is one). */
export interface PlannedCheckpoint {
  /** The store's numbering: the outbox keys name a checkpoint by it. */
  seq: bigint;
  cumulativeAmount: bigint;
  periodEnd: bigint;
  final: boolean;
  tenantSig: string | null;
  /** Wall-clock unix seconds it was signed. */
  createdAt: number;
}

/** MarketplaceV2.getLease: `end` 0 with terms known means settled. */
export interface ChainLeaseState {
  paid: bigint;
  /** What the pending claim brings `paid` up to; 0 when none. */
  pending: bigint;
  payableAt: bigint;
  end: bigint;
}

/** How far an outbox intent got: none sent, in flight, or its outcome. */
export type IntentState = 'none' | 'pending' | 'confirmed' | 'failed';

export interface LeaseFacts {
  /** running: pay what is due in time; settling: the lease ended, its final checkpoint is stored. */
  phase: 'running' | 'settling';
  deposit: bigint;
  checkpoints: readonly PlannedCheckpoint[];
  chain: ChainLeaseState;
  /** Chain time, unix seconds. */
  now: bigint;
  /** Wall-clock unix seconds (checkpoints' createdAt are). */
  wallNow: number;
  challengeWindow: bigint;
  lateWindow: bigint;
  /** config settlement.claimAfterWindowFraction. */
  claimAfterWindowFraction: number;
  /** config settlement.countersignGraceSeconds: an ended lease's final checkpoint waits this long for the tenant. */
  countersignGraceSeconds: number;
  /**
   * The provider was slashed (MarketplaceV2 status Slashed): its claims and their finalisation
   * revert, so none is planned; countersigned checkpoints still redeem, and its leases settle from
   * end + challengeWindow. Absent: not slashed.
   */
  providerSlashed?: boolean;
  /** The state of each of this lease's intents, by kind and checkpoint seq. */
  intent: (kind: 'redeem' | 'claim' | 'finalize' | 'close' | 'settle', seq?: bigint) => IntentState;
}

export type SettlementAction =
  | { kind: 'redeem'; seq: bigint }
  | { kind: 'claim'; seq: bigint; late: boolean }
  | { kind: 'finalize'; seq: bigint }
  | { kind: 'close' }
  | { kind: 'settle' };

export interface SettlementPlan {
  /** The chain settled the lease: nothing is left to do. */
  settled: boolean;
  actions: SettlementAction[];
  /**
   * A running lease with nothing to do now: the chain time before which nothing comes due while
   * its facts (checkpoints, intents) stay as they are; null: nothing ever does. Absent: look again
   * next round (something is in flight, or the lease is ending).
   */
  quietUntil?: bigint | null;
}

const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

/** Whether an intent of the lease's latest checkpoint (or the pending claim's finalisation) awaits its outcome. */
function intentsInFlight(facts: LeaseFacts): boolean {
  return facts.checkpoints.some((cp) => (['redeem', 'claim', 'finalize'] as const).some((kind) => facts.intent(kind, cp.seq) === 'pending'));
}

/**
 * When a quiet running lease's next payment can come due by time alone: its pending claim
 * matures (finalise), or its unpaid usage gets old enough to claim. Redeems come from new facts (a
 * countersignature), never from time.
 */
function nextDue(facts: LeaseFacts, floor: bigint, lastClaim: bigint, canClaim: boolean): bigint | null {
  const { chain, challengeWindow, deposit } = facts;
  let due: bigint | null = null;
  const earliest = (at: bigint): void => {
    due = due === null || at < due ? at : due;
  };
  const claimed = [...facts.checkpoints].reverse().find((cp) => facts.intent('claim', cp.seq) === 'confirmed') ?? facts.checkpoints.at(-1);
  if (canClaim && chain.payableAt !== 0n && claimed && facts.intent('finalize', claimed.seq) === 'none') earliest(chain.payableAt);
  const latest = facts.checkpoints.at(-1);
  if (canClaim && latest && payableTo(latest.cumulativeAmount, deposit) > floor && facts.intent('claim', latest.seq) === 'none') {
    const oldestUnpaid = facts.checkpoints.find(
      (cp) => payableTo(cp.cumulativeAmount, deposit) > floor && !(cp.tenantSig && facts.intent('redeem', cp.seq) === 'confirmed'),
    );
    if (oldestUnpaid) {
      // The claim rule compares Number(now - periodEnd) >= fraction * window: the first whole second that passes it.
      const age = BigInt(Math.ceil(facts.claimAfterWindowFraction * Number(challengeWindow)));
      const at = [latest.periodEnd, oldestUnpaid.periodEnd + age].reduce(max);
      if (at < lastClaim) earliest(at);
    }
  }
  return due;
}

/**
 * The chain time until which the lease's checkpointed usage not yet paid, redeemed or claimed can
 * be claimed in full (end + challengeWindow; a claim after it is late: paid less 10%, and refused
 * lateWindow later), or undefined when nothing is owed or the provider cannot claim. Operators
 * are warned as it nears (provider_claim_deadline_seconds).
 */
export function claimDeadline(facts: Pick<LeaseFacts, 'deposit' | 'checkpoints' | 'chain' | 'challengeWindow' | 'providerSlashed'>): bigint | undefined {
  const { chain, deposit } = facts;
  const latest = facts.checkpoints.at(-1);
  if (chain.end === 0n || facts.providerSlashed === true || !latest) return undefined;
  if (payableTo(latest.cumulativeAmount, deposit) <= max(chain.paid, chain.pending)) return undefined;
  return chain.end + facts.challengeWindow;
}

/** The chain actions due for one lease now. */
export function planSettlement(facts: LeaseFacts): SettlementPlan {
  const { chain, now, challengeWindow, lateWindow, deposit } = facts;
  if (chain.end === 0n) return { settled: true, actions: [] };
  const actions: SettlementAction[] = [];
  const floor = max(chain.paid, chain.pending);
  const latest = facts.checkpoints.at(-1);
  const raises = (cp: PlannedCheckpoint, above: bigint): boolean => payableTo(cp.cumulativeAmount, deposit) > above;
  let paymentInFlight = false;

  // 1. The latest countersigned checkpoint is redeemed at once: it pays without a window.
  const countersigned = [...facts.checkpoints].reverse().find((cp) => cp.tenantSig !== null);
  const redeem = countersigned ? facts.intent('redeem', countersigned.seq) : 'none';
  if (countersigned && raises(countersigned, chain.paid) && (redeem === 'none' || redeem === 'pending')) {
    if (redeem === 'none') actions.push({ kind: 'redeem', seq: countersigned.seq });
    paymentInFlight = true;
  }

  // 2. Otherwise the latest checkpoint is claimed, while claims are still taken (late ones at 90%):
  //    an ended lease's after the countersign grace; a running lease's once usage neither
  //    countersigned nor claimed is older than the configured fraction of the challenge window,
  //    so a tenant that stops countersigning never pushes the provider into the late window.
  const lastClaim = chain.end + challengeWindow + lateWindow;
  const canClaim = facts.providerSlashed !== true;
  // A claim finalises a matured pending claim itself: a finalize after it would revert.
  let claimInFlight = false;
  if (canClaim && !paymentInFlight && latest && raises(latest, floor) && latest.periodEnd <= now && now < lastClaim) {
    const claim = facts.intent('claim', latest.seq);
    const oldestUnpaid = facts.checkpoints.find((cp) => raises(cp, floor) && !(cp.tenantSig && facts.intent('redeem', cp.seq) === 'confirmed'));
    const due =
      facts.phase === 'settling'
        ? latest.final && (latest.tenantSig !== null || facts.wallNow - latest.createdAt >= facts.countersignGraceSeconds)
        : oldestUnpaid !== undefined && Number(now - oldestUnpaid.periodEnd) >= facts.claimAfterWindowFraction * Number(challengeWindow);
    if (claim === 'pending') paymentInFlight = claimInFlight = true;
    else if (claim === 'none' && due) {
      actions.push({ kind: 'claim', seq: latest.seq, late: now >= chain.end + challengeWindow });
      paymentInFlight = claimInFlight = true;
    }
  }

  // 3. A pending claim whose window passed becomes earnings.
  if (canClaim && !claimInFlight && chain.payableAt !== 0n && now >= chain.payableAt) {
    const claimed = [...facts.checkpoints].reverse().find((cp) => facts.intent('claim', cp.seq) === 'confirmed') ?? latest;
    if (claimed && facts.intent('finalize', claimed.seq) === 'none') actions.push({ kind: 'finalize', seq: claimed.seq });
  }

  if (facts.phase === 'running') {
    if (actions.length > 0 || paymentInFlight || intentsInFlight(facts)) return { settled: false, actions };
    return { settled: false, actions, quietUntil: nextDue(facts, floor, lastClaim, canClaim) };
  }

  // 4. An ended lease is closed on-chain, so it ends now rather than at its maxDuration.
  if (now < chain.end && facts.intent('close') === 'none') actions.push({ kind: 'close' });

  // 5. Settled (the tenant's refund) once it is over, its window passed, and nothing is still coming.
  const claimMatured = chain.payableAt === 0n || now >= chain.payableAt;
  if (!paymentInFlight && now >= chain.end + challengeWindow && claimMatured && facts.intent('settle') === 'none') {
    const owed = canClaim && latest !== undefined && raises(latest, floor) && latest.periodEnd <= now && now < lastClaim;
    // A claim still owed but not yet due (the grace) waits; one that can no longer be made does not.
    if (!owed || facts.intent('claim', latest.seq) === 'failed') actions.push({ kind: 'settle' });
  }
  return { settled: false, actions };
}
