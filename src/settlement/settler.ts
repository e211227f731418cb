import type { Signer, TypedDataDomain } from 'ethers';
import { boundedRpc, outcomeOf, type ChainClient, type Checkpoint, type TxOutcome } from '../chain';
import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { OutboxRepository, Store, StoredCheckpoint, StoredLease } from '../store';
import { draftCheckpoint, signDraft } from './checkpoints';
import { claimKey, closeKey, finalizeKey, redeemKey, settleKey, withdrawKey, WITHDRAW_KEY_PREFIX } from './outbox-keys';
import { claimCap } from './pricing';

export interface SettlerSettings {
  /** How long an ended lease's final checkpoint waits for the tenant's countersignature before a unilateral claim. */
  countersignGraceSeconds: number;
  withdrawIntervalSeconds: number;
  /** Withdraw as soon as earnings pass this (base units). */
  withdrawThreshold: bigint;
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

interface ChainLease {
  startedAt: bigint;
  closedAt: bigint;
  maxDuration: bigint;
  paid: bigint;
  escrow: bigint;
  settled: boolean;
  disputed: boolean;
}

interface ChainPending {
  cumulativeAmount: bigint;
  seq: bigint;
  payableAt: bigint;
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
  private challengeWindow: bigint | undefined;
  /** The interval counts from the start: a restart must not withdraw below the threshold at once. */
  private lastWithdrawCheck: number;
  private readonly reported = new Set<string>();

  constructor(private readonly deps: SettlerDeps) {
    this.outbox = deps.store.outbox;
    this.lastWithdrawCheck = deps.clock.now();
  }

  get provider(): string {
    return this.deps.chain.sender.address;
  }

  async window(): Promise<bigint> {
    if (this.challengeWindow === undefined) {
      this.challengeWindow = await this.deps.chain.marketplace.read('challengeWindow', []);
    }
    return this.challengeWindow;
  }

  /**
   * Signs and stores a checkpoint over every record so far when there are records it does not
   * cover yet (or `final` and no final one exists). Stored before it is served or sent: a seq is
   * never signed over two different roots.
   */
  async checkpoint(lease: StoredLease, options: { final: boolean; resultDigest?: string }): Promise<StoredCheckpoint | undefined> {
    const { store, clock } = this.deps;
    const records = store.usage.forLease(lease.leaseId);
    if (records.length === 0) return undefined;
    const existing = store.checkpoints.forLease(lease.leaseId);
    const last = existing.at(-1);
    if (last?.final) return last;
    if (!options.final && last && last.recordCount === records.length) return undefined;
    const seq = (last?.seq ?? 0n) + 1n;
    const periodEnd = Number(records.at(-1)!.t1);
    const cap = claimCap(lease.maxRatePerSecond, lease.openedAt, periodEnd, lease.deposit);
    const draft = draftCheckpoint(BigInt(lease.leaseId), seq, records, cap, options.final ? options.resultDigest : undefined);
    const providerSig = await signDraft(this.deps.signer, this.deps.domain, draft);
    const stored: StoredCheckpoint = {
      ...draft.checkpoint,
      recordCount: records.length,
      final: options.final,
      providerSig,
      tenantSig: null,
      status: 'signed',
      createdAt: Math.floor(clock.now() / 1000),
    };
    store.checkpoints.insert(stored);
    if (draft.total > draft.checkpoint.cumulativeAmount) {
      this.deps.log.warn({ leaseId: lease.leaseId, seq: Number(seq), total: draft.total.toString(), cap: cap.toString() }, 'usage is above the claim cap; the checkpoint asks only the cap');
    }
    this.deps.log.info(
      { leaseId: lease.leaseId, seq: Number(seq), records: records.length, cumulativeAmount: stored.cumulativeAmount.toString(), final: options.final },
      'checkpoint signed',
    );
    return stored;
  }

  /** The tenant countersigned: redeem it now, when it pays more than is already paid. */
  submitRedeem(cp: StoredCheckpoint): void {
    if (!cp.tenantSig) return;
    const { chain } = this.deps;
    const checkpoint = toCheckpoint(cp);
    chain.sender.submit({
      key: redeemKey(cp.leaseId, cp.seq),
      to: chain.settings.marketplaceAddress,
      data: chain.marketplace.encode('redeem', [checkpoint, cp.providerSig, cp.tenantSig]),
    });
  }

  async chainNow(): Promise<number> {
    const block = await boundedRpc('getBlock(latest)', {}, () => this.deps.chain.rpc.getBlock('latest'));
    return block ? block.timestamp : Math.floor(this.deps.clock.now() / 1000);
  }

  async chainLease(leaseId: string): Promise<ChainLease> {
    return (await this.deps.chain.marketplace.read('getLease', [BigInt(leaseId)])) as unknown as ChainLease;
  }

  /**
   * One step of settling an ended lease whose final usage is stored: final checkpoint; redeem
   * it if countersigned, else claim it after the grace; close the lease on-chain; finalise the
   * claim after the challenge window; settle (the tenant's refund). True once the chain says the
   * lease is settled.
   */
  async step(lease: StoredLease, resultDigest: string): Promise<boolean> {
    const { chain, store, log } = this.deps;
    const leaseId = BigInt(lease.leaseId);
    const on = await this.chainLease(lease.leaseId);
    if (on.settled) {
      for (const cp of store.checkpoints.forLease(lease.leaseId)) if (cp.status !== 'final') store.checkpoints.setStatus(lease.leaseId, Number(cp.seq), 'final');
      return true;
    }
    const final = await this.checkpoint(lease, { final: true, resultDigest });
    const now = await this.chainNow();
    const window = await this.window();
    const end = on.closedAt !== 0n ? on.closedAt : on.startedAt + on.maxDuration;
    const pending = (await chain.marketplace.read('getPendingClaim', [leaseId])) as unknown as ChainPending;
    const market = chain.settings.marketplaceAddress;

    // 1. Payment for the final checkpoint.
    if (final && final.cumulativeAmount > on.paid) {
      // The chain must have reached the checkpoint's period before it can be claimed.
      if (BigInt(now) < final.periodEnd) return false;
      const redeem = final.tenantSig ? this.outcome(redeemKey(leaseId, final.seq)) : undefined;
      if (final.tenantSig && redeem === undefined) {
        this.submitRedeem(final);
        return false;
      }
      if (final.tenantSig && redeem?.state === 'confirmed') {
        store.checkpoints.setStatus(lease.leaseId, Number(final.seq), 'final');
      } else {
        const claiming = claimKey(leaseId, final.seq);
        const claim = this.outcome(claiming);
        const waited = Math.floor(this.deps.clock.now() / 1000) - final.createdAt;
        if (claim === undefined && !this.outbox.byKey(claiming)) {
          if (!final.tenantSig && waited < this.deps.settings.countersignGraceSeconds) return false;
          if (pending.cumulativeAmount < final.cumulativeAmount && !on.disputed && BigInt(now) < end + window) {
            chain.sender.submit({ key: claiming, to: market, data: chain.marketplace.encode('claim', [toCheckpoint(final), final.providerSig]) });
            store.checkpoints.setStatus(lease.leaseId, Number(final.seq), 'claimed');
            log.info({ leaseId: lease.leaseId, seq: Number(final.seq), amount: final.cumulativeAmount.toString() }, 'claiming the final checkpoint (not countersigned)');
            return false;
          }
        } else if (claim === undefined) {
          return false; // claim in flight
        } else if (claim.state !== 'confirmed') {
          this.reportOnce(claiming, () => log.error({ leaseId: lease.leaseId, error: claim.error }, 'the claim failed; the lease settles without it'));
        }
      }
      if (redeem !== undefined && redeem.state !== 'confirmed') {
        this.reportOnce(redeemKey(leaseId, final.seq), () => log.warn({ leaseId: lease.leaseId, error: redeem.error }, 'redeem failed; claiming instead'));
      }
    }

    // 2. Close it, so it ends now rather than at its maxDuration.
    if (on.closedAt === 0n && BigInt(now) < on.startedAt + on.maxDuration) {
      const close = this.outbox.byKey(closeKey(leaseId));
      if (!close) {
        chain.sender.submit({ key: closeKey(leaseId), to: market, data: chain.marketplace.encode('closeLease', [leaseId]) });
        log.info({ leaseId: lease.leaseId }, 'closing the lease on-chain');
      }
      if (!close || outcomeOf(close) === undefined) return false;
    }

    // 3. A pending claim becomes earnings after its window.
    if (pending.payableAt !== 0n && BigInt(now) >= pending.payableAt) {
      const key = finalizeKey(leaseId, pending.seq);
      if (!this.outbox.byKey(key)) {
        chain.sender.submit({ key, to: market, data: chain.marketplace.encode('finalizeClaim', [leaseId]) });
        log.info({ leaseId: lease.leaseId, seq: Number(pending.seq) }, 'finalising the claim');
      }
      const done = this.outcome(key);
      if (done?.state === 'confirmed') store.checkpoints.setStatus(lease.leaseId, Number(pending.seq), 'final');
      if (done === undefined) return false;
    }

    // 4. Settle: the rest of the escrow back to the tenant, once no claim can still come.
    if (BigInt(now) >= end + window && (pending.payableAt === 0n || BigInt(now) >= pending.payableAt)) {
      const key = settleKey(leaseId);
      if (!this.outbox.byKey(key)) {
        chain.sender.submit({ key, to: market, data: chain.marketplace.encode('settleLease', [leaseId]) });
        log.info({ leaseId: lease.leaseId }, 'settling the lease (refund to the tenant)');
      }
      const done = this.outcome(key);
      if (done && done.state !== 'confirmed') {
        // Someone else (the tenant) may have settled it first: the next read of the lease says so.
        this.reportOnce(key, () => log.warn({ leaseId: lease.leaseId, error: done.error }, 'settleLease did not go through'));
        const again = await this.chainLease(lease.leaseId);
        return again.settled;
      }
    }
    return false;
  }

  /** Withdraws earnings when they pass the threshold, or on the interval when there are any. */
  async withdrawIfDue(): Promise<void> {
    const { chain, clock, settings } = this.deps;
    if (this.withdrawInFlight()) return;
    const earnings = await chain.marketplace.read('earnings', [this.provider]);
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
    const earnings = await this.deps.chain.marketplace.read('earnings', [this.provider]);
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

export function toCheckpoint(cp: StoredCheckpoint): Checkpoint {
  return { leaseId: cp.leaseId, seq: cp.seq, usageRoot: cp.usageRoot, cumulativeAmount: cp.cumulativeAmount, periodEnd: cp.periodEnd, resultDigest: cp.resultDigest };
}
