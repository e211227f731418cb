import type { Signer, TypedDataDomain } from 'ethers';
import { PROVIDER_SLASHED, boundedRpc, checkpointOf, outcomeOf, providerAccount, signCheckpoint, type ChainClient, type Checkpoint, type LeaseTerms, type TxOutcome } from '../chain';
import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { OutboxRepository, Store, StoredCheckpoint, StoredLease } from '../store';
import { claimKey, closeKey, finalizeKey, redeemKey, settleKey, withdrawKey, WITHDRAW_KEY_PREFIX } from './outbox-keys';
import { claimDeadline, planSettlement, type ChainLeaseState, type IntentState, type SettlementAction } from './planner';

export interface SettlerSettings {
  /** How long an ended lease's final checkpoint waits for the tenant's countersignature before a unilateral claim. */
  countersignGraceSeconds: number;
  /** A running lease's usage neither countersigned nor claimed is claimed once older than this fraction of the challenge window. */
  claimAfterWindowFraction: number;
  withdrawIntervalSeconds: number;
  /** Withdraw as soon as earnings pass this (base units). */
  withdrawThreshold: bigint;
}

/** What every lease's step in one settlement round shares (Settler.round). */
export interface SettlementRound {
  /** Chain time, unix seconds. */
  now: bigint;
  challengeWindow: bigint;
  lateWindow: bigint;
  slashed: boolean;
}

/** How one step left a lease: settled on-chain, or when it next needs a step (SettlementPlan.quietUntil). */
export interface StepOutcome {
  settled: boolean;
  quietUntil?: bigint | null;
}

export interface SettlerDeps {
  chain: ChainClient;
  store: Store;
  signer: Signer;
  domain: TypedDataDomain;
  clock: Clock;
  log: Logger;
  settings: SettlerSettings;
}

/**
 * Proofs and payment for leases: checkpoints over the stored usage records (EIP-712, provider
 * key), and the chain side of an ended lease, one idempotent step at a time. Every transaction is
 * an outbox intent with a key naming what it is (./outbox-keys.ts), so a step repeated
 * after a crash finds the intent already recorded and never sends it twice; each step reads the
 * lease back from the chain before it decides.
 */
export class Settler {
  private readonly outbox: OutboxRepository;
  private windows: { challengeWindow: bigint; lateWindow: bigint } | undefined;
  /** The interval counts from the start: a restart must not withdraw below the threshold at once. */
  private lastWithdrawCheck: number;
  private readonly reported = new Set<string>();
  /** Per lease, the wall-clock unix second until which its unpaid usage can be claimed in full (claimDeadline), as of its last step. */
  private readonly deadlines = new Map<string, number>();

  constructor(private readonly deps: SettlerDeps) {
    this.outbox = deps.store.outbox;
    this.lastWithdrawCheck = deps.clock.now();
  }

  get provider(): string {
    return this.deps.chain.sender.address;
  }

  /** The marketplace's challenge and late windows (immutable: read once). */
  async marketWindows(): Promise<{ challengeWindow: bigint; lateWindow: bigint }> {
    if (this.windows === undefined) {
      const [challengeWindow, lateWindow] = await Promise.all([
        this.deps.chain.marketplace.read('challengeWindow', []),
        this.deps.chain.marketplace.read('lateWindow', []),
      ]);
      this.windows = { challengeWindow: BigInt(challengeWindow), lateWindow: BigInt(lateWindow) };
    }
    return this.windows;
  }

  async window(): Promise<bigint> {
    return (await this.marketWindows()).challengeWindow;
  }

  /**
   * Signs and stores a checkpoint over every record so far when there are records it does not
   * cover yet (or `final` and no final one exists). It carries the records' exact total
   * (checkpointOf, the one rule both sides sign by); the contract cuts the payout to the deposit.
   * Stored before it is served or sent.
   */
  async checkpoint(lease: StoredLease, options: { final: boolean; resultDigest?: string }): Promise<StoredCheckpoint | undefined> {
    const { store, clock } = this.deps;
    const records = store.usage.forLease(lease.leaseId);
    if (records.length === 0) return undefined;
    const existing = store.checkpoints.forLease(lease.leaseId);
    const last = existing.at(-1);
    if (last?.final) return last;
    if (!options.final && last && last.recordCount === BigInt(records.length)) return undefined;
    const seq = (last?.seq ?? 0n) + 1n;
    const checkpoint = checkpointOf(BigInt(lease.leaseId), records, options.final ? options.resultDigest : undefined);
    const providerSig = await signCheckpoint(this.deps.signer, this.deps.domain, checkpoint);
    const stored: StoredCheckpoint = {
      ...checkpoint,
      seq,
      final: options.final,
      providerSig,
      tenantSig: null,
      status: 'signed',
      createdAt: Math.floor(clock.now() / 1000),
    };
    store.checkpoints.insert(stored);
    this.deps.log.info(
      { leaseId: lease.leaseId, seq: Number(seq), records: records.length, cumulativeAmount: stored.cumulativeAmount.toString(), final: options.final },
      'checkpoint signed',
    );
    return stored;
  }

  /** The lease's terms as the chain fixed them at openLease: every call about the lease passes them. */
  termsOf(lease: StoredLease): LeaseTerms {
    return { provider: this.provider, tenant: lease.tenant, startedAt: BigInt(lease.openedAt), deposit: lease.deposit, rates: lease.rates, allocation: lease.allocation };
  }

  /** The tenant countersigned: redeem it now (the planner decides whether it pays more than is paid). */
  submitRedeem(lease: StoredLease, cp: StoredCheckpoint): void {
    if (!cp.tenantSig) return;
    const { chain } = this.deps;
    chain.sender.submit({
      key: redeemKey(cp.leaseId, cp.seq),
      to: chain.settings.marketplaceAddress,
      data: chain.marketplace.encode('redeem', [this.termsOf(lease), toCheckpoint(cp), cp.providerSig, cp.tenantSig]),
    });
  }

  async chainNow(): Promise<number> {
    const block = await boundedRpc('getBlock(latest)', {}, () => this.deps.chain.rpc.getBlock('latest'));
    return block ? block.timestamp : Math.floor(this.deps.clock.now() / 1000);
  }

  async chainLease(leaseId: string): Promise<ChainLeaseState & { paid: bigint }> {
    const on = (await this.deps.chain.marketplace.read('getLease', [BigInt(leaseId)])) as unknown as ChainLeaseState;
    return { paid: BigInt(on.paid), pending: BigInt(on.pending), payableAt: BigInt(on.payableAt), end: BigInt(on.end) };
  }

  /**
   * What every lease's step in one round of the settlement loop shares, read once for all of them:
   * the chain's time, the marketplace's windows, whether this provider was slashed.
   */
  async round(): Promise<SettlementRound> {
    const [now, windows, account] = await Promise.all([this.chainNow(), this.marketWindows(), this.account()]);
    return { now: BigInt(now), ...windows, slashed: account.status === PROVIDER_SLASHED };
  }

  /**
   * One step of a lease's settlement: a running lease's due payments (redeem a countersigned
   * checkpoint, claim in time), or an ended one's whole way (final checkpoint, payment, close,
   * finalise, settle). The planner decides from the facts (the round's, and the lease's own: one
   * chain read); this runs its actions through the outbox. `settled` once the chain says so;
   * `quietUntil` as the plan says (see SettlementPlan).
   */
  async step(lease: StoredLease, round: SettlementRound, resultDigest?: string): Promise<StepOutcome> {
    const { store, log, settings, clock } = this.deps;
    const leaseId = BigInt(lease.leaseId);
    const phase = lease.state === 'settling' ? 'settling' : 'running';
    if (phase === 'settling') await this.checkpoint(lease, { final: true, resultDigest });
    const on = await this.chainLease(lease.leaseId);
    const checkpoints = store.checkpoints.forLease(lease.leaseId);
    const plan = planSettlement({
      phase,
      deposit: lease.deposit,
      checkpoints,
      chain: on,
      now: round.now,
      wallNow: Math.floor(clock.now() / 1000),
      challengeWindow: round.challengeWindow,
      lateWindow: round.lateWindow,
      claimAfterWindowFraction: settings.claimAfterWindowFraction,
      providerSlashed: round.slashed,
      countersignGraceSeconds: settings.countersignGraceSeconds,
      intent: (kind, seq) => this.intentState(kind, leaseId, seq),
    });
    const deadline = round.slashed ? undefined : claimDeadline({ deposit: lease.deposit, checkpoints, chain: on, challengeWindow: round.challengeWindow });
    // Chain time runs beside the wall clock; the gap is taken as it is now.
    if (deadline === undefined || plan.settled) this.deadlines.delete(lease.leaseId);
    else this.deadlines.set(lease.leaseId, Math.floor(clock.now() / 1000) + Number(deadline - round.now));
    if (plan.settled) {
      for (const cp of checkpoints) if (cp.status !== 'final') store.checkpoints.setStatus(lease.leaseId, Number(cp.seq), 'final');
      return { settled: true };
    }
    for (const cp of checkpoints) {
      if (cp.tenantSig && this.intentState('redeem', leaseId, cp.seq) === 'confirmed' && cp.status !== 'final') store.checkpoints.setStatus(lease.leaseId, Number(cp.seq), 'final');
      const failed = this.outcome(redeemKey(leaseId, cp.seq)) ?? this.outcome(claimKey(leaseId, cp.seq));
      if (failed && failed.state !== 'confirmed') {
        this.reportOnce(`${lease.leaseId}:${cp.seq}`, () => log.warn({ leaseId: lease.leaseId, seq: Number(cp.seq), error: failed.error }, 'a payment transaction failed'));
      }
    }
    for (const action of plan.actions) this.run(lease, action, checkpoints);
    return plan.quietUntil === undefined ? { settled: false } : { settled: false, quietUntil: plan.quietUntil };
  }

  /** The wall-clock unix second until which this lease's unpaid usage can be claimed in full; undefined when nothing is owed. */
  claimDeadline(leaseId: string): number | undefined {
    return this.deadlines.get(leaseId);
  }

  private run(lease: StoredLease, action: SettlementAction, checkpoints: readonly StoredCheckpoint[]): void {
    const { chain, store, log } = this.deps;
    const leaseId = BigInt(lease.leaseId);
    const market = chain.settings.marketplaceAddress;
    const terms = this.termsOf(lease);
    const cpOf = (seq: bigint): StoredCheckpoint | undefined => checkpoints.find((cp) => cp.seq === seq);
    switch (action.kind) {
      case 'redeem': {
        const cp = cpOf(action.seq);
        if (cp) this.submitRedeem(lease, cp);
        log.info({ leaseId: lease.leaseId, seq: Number(action.seq) }, 'redeeming the countersigned checkpoint');
        return;
      }
      case 'claim': {
        const cp = cpOf(action.seq);
        if (!cp) return;
        chain.sender.submit({ key: claimKey(leaseId, cp.seq), to: market, data: chain.marketplace.encode('claim', [terms, toCheckpoint(cp), cp.providerSig]) });
        store.checkpoints.setStatus(lease.leaseId, Number(cp.seq), 'claimed');
        log.info({ leaseId: lease.leaseId, seq: Number(cp.seq), amount: cp.cumulativeAmount.toString(), late: action.late }, 'claiming the checkpoint (not countersigned)');
        return;
      }
      case 'finalize':
        chain.sender.submit({ key: finalizeKey(leaseId, action.seq), to: market, data: chain.marketplace.encode('finalizeClaim', [leaseId]) });
        store.checkpoints.setStatus(lease.leaseId, Number(action.seq), 'final');
        log.info({ leaseId: lease.leaseId, seq: Number(action.seq) }, 'finalising the claim');
        return;
      case 'close':
        chain.sender.submit({ key: closeKey(leaseId), to: market, data: chain.marketplace.encode('closeLease', [leaseId, terms]) });
        log.info({ leaseId: lease.leaseId }, 'closing the lease on-chain');
        return;
      case 'settle':
        chain.sender.submit({ key: settleKey(leaseId), to: market, data: chain.marketplace.encode('settleLease', [leaseId, terms]) });
        log.info({ leaseId: lease.leaseId }, 'settling the lease (refund to the tenant)');
        return;
    }
  }

  private intentState(kind: 'redeem' | 'claim' | 'finalize' | 'close' | 'settle', leaseId: bigint, seq = 0n): IntentState {
    const key =
      kind === 'redeem' ? redeemKey(leaseId, seq) : kind === 'claim' ? claimKey(leaseId, seq) : kind === 'finalize' ? finalizeKey(leaseId, seq) : kind === 'close' ? closeKey(leaseId) : settleKey(leaseId);
    const entry = this.outbox.byKey(key);
    if (!entry) return 'none';
    const outcome = outcomeOf(entry);
    return outcome === undefined ? 'pending' : outcome.state === 'confirmed' ? 'confirmed' : 'failed';
  }

  /** The provider's finalised earnings on the marketplace, and the payout address withdraw() pays. */
  account(): ReturnType<typeof providerAccount> {
    return providerAccount(this.deps.chain.marketplace, this.provider);
  }

  /** Withdraws earnings when they pass the threshold, or on the interval when there are any. */
  async withdrawIfDue(): Promise<void> {
    const { chain, clock, settings } = this.deps;
    if (this.withdrawInFlight()) return;
    const { earnings } = await this.account();
    if (earnings === 0n) return;
    const nowMs = clock.now();
    const intervalDue = nowMs - this.lastWithdrawCheck >= settings.withdrawIntervalSeconds * 1000;
    if (earnings <= settings.withdrawThreshold && !intervalDue) return;
    // Looked at again after the read: the operator may have asked for one meanwhile.
    if (this.withdrawInFlight()) return;
    const key = this.submitWithdraw();
    this.deps.log.info({ earnings: earnings.toString(), key }, 'withdrawing earnings');
  }

  /**
   * Withdraws whatever earnings are finalised, now, whatever the threshold and interval say (the
   * operator asked). Returns the intent's key and the earnings it withdraws; a withdraw already
   * out is returned instead of a second one; undefined when there is nothing to withdraw.
   */
  async withdrawNow(): Promise<{ key: string; earnings: bigint } | undefined> {
    const before = this.withdrawInFlight();
    const { earnings } = await this.account();
    // Looked at again after the read: the settlement loop may have sent one meanwhile.
    const open = before ?? this.withdrawInFlight();
    if (open) return { key: open, earnings };
    if (earnings === 0n) return undefined;
    const key = this.submitWithdraw();
    this.deps.log.info({ earnings: earnings.toString(), key }, 'withdrawing earnings (asked by the operator)');
    return { key, earnings };
  }

  /** The key of a withdraw transaction queued or pending, if any: there is never more than one. */
  withdrawInFlight(): string | undefined {
    return this.outbox.openWithPrefix(WITHDRAW_KEY_PREFIX)?.key;
  }

  private submitWithdraw(): string {
    const { chain, clock } = this.deps;
    const key = withdrawKey(this.outbox.countWithPrefix(WITHDRAW_KEY_PREFIX) + 1);
    chain.sender.submit({ key, to: chain.settings.marketplaceAddress, data: chain.marketplace.encode('withdraw', []) });
    this.lastWithdrawCheck = clock.now();
    return key;
  }

  private outcome(key: string): TxOutcome | undefined {
    const entry = this.outbox.byKey(key);
    return entry ? outcomeOf(entry) : undefined;
  }

  private reportOnce(key: string, report: () => void): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    try {
      report();
    } catch (err) {
      this.deps.log.warn({ err: describeError(err) }, 'report failed');
    }
  }
}

/** The chain's shape of a stored checkpoint (without the store's seq and bookkeeping). */
export function toCheckpoint(cp: StoredCheckpoint): Checkpoint {
  return { leaseId: cp.leaseId, usageRoot: cp.usageRoot, recordCount: cp.recordCount, cumulativeAmount: cp.cumulativeAmount, periodEnd: cp.periodEnd, resultDigest: cp.resultDigest };
}
