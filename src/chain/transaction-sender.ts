import { Transaction, type JsonRpcProvider, type TransactionReceipt, type TransactionRequest } from 'ethers';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { OutboxAttempt, OutboxEntry, OutboxRepository } from '../store';
import { Backoff, Wakeup, sleep } from './backoff';
import { classifyBroadcastError, describeRpcError, isRevert } from './rpc';
import { DEFAULT_SENDER_POLICY, currentFees, gasLimitFor, replacementFees, type Fees, type SenderPolicy } from './sender-policy';
import { OutcomeWaiters, outcomeOf, type TxOutcome } from './tx-outcome';

/** What signs for the sender: an ethers Wallet fits. The key itself never reaches this module. */
export interface TxSigner {
  readonly address: string;
  signTransaction(tx: TransactionRequest): Promise<string>;
}

export interface TxIntent {
  /** Idempotency key: the same key is the same transaction, across calls and restarts. */
  key: string;
  to: string;
  data: string;
  value?: bigint;
}

export interface TransactionSenderDeps {
  rpc: JsonRpcProvider;
  signer: TxSigner;
  chainId: number;
  outbox: OutboxRepository;
  clock: Clock;
  log: Logger;
  policy?: Partial<SenderPolicy>;
  /** Names a contract's custom error in revert data, for readable failures. */
  describeRevert?: (data: string | undefined) => string | undefined;
}

type Step = 'again' | 'wait' | 'idle';

/**
 * The only thing that sends transactions for one key. It owns the nonce (one transaction out at a
 * time, in outbox order, so no gap can form), records every intent and every signed transaction
 * in the outbox before it reaches the network, and after a restart resumes from the outbox: it
 * looks for receipts of what it signed and re-broadcasts the same signed bytes rather than signing
 * anew. An RPC outage only delays it: every step retries with backoff until `stop`.
 */
export class TransactionSender {
  private readonly policy: SenderPolicy;
  private readonly wakeup = new Wakeup();
  private readonly waiters = new OutcomeWaiters();
  private readonly backoff: Backoff;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly deps: TransactionSenderDeps) {
    this.policy = { ...DEFAULT_SENDER_POLICY, ...deps.policy };
    this.backoff = new Backoff(this.policy.backoff);
  }

  get address(): string {
    return this.deps.signer.address;
  }

  /** Starts the send loop; it runs until `stop()` or the signal aborts. */
  start(signal?: AbortSignal): void {
    if (this.loop) return;
    this.controller = new AbortController();
    const onAbort = (): void => this.controller?.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.loop = this.run(this.controller.signal).finally(() => signal?.removeEventListener('abort', onAbort));
  }

  async stop(): Promise<void> {
    this.controller?.abort();
    await this.loop;
    this.loop = undefined;
  }

  /** Records the intent (or finds it under its key) and wakes the loop. Returns at once. */
  submit(intent: TxIntent): OutboxEntry {
    const entry = this.deps.outbox.enqueue(
      { key: intent.key, sender: this.address, chainId: this.deps.chainId, to: intent.to, data: intent.data, value: intent.value },
      this.deps.clock.now(),
    );
    if (entry.to.toLowerCase() !== intent.to.toLowerCase() || entry.data !== intent.data) {
      this.deps.log.warn({ key: intent.key }, 'an intent with this key was already recorded with other calldata; keeping the recorded one');
    }
    this.wakeup.wake();
    return entry;
  }

  /** Resolves when the intent under `key` is final (confirmed, reverted or failed). */
  async waitFor(key: string, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<TxOutcome> {
    const signals = [options.signal, options.timeoutMs ? AbortSignal.timeout(options.timeoutMs) : undefined].filter(
      (s): s is AbortSignal => s !== undefined,
    );
    const signal = signals.length > 0 ? AbortSignal.any(signals) : undefined;
    for (;;) {
      const entry = this.deps.outbox.byKey(key);
      if (!entry) throw new ProviderError('TX_REJECTED', `no transaction intent recorded under ${key}`, { input: key });
      const outcome = outcomeOf(entry);
      if (outcome) return outcome;
      await this.waiters.next(key, signal);
    }
  }

  /** Submits and waits: the common case for a caller that needs the result. */
  async send(intent: TxIntent, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<TxOutcome> {
    this.submit(intent);
    return this.waitFor(intent.key, options);
  }

  // ------------------------------------------------------------------ the loop

  private async run(signal: AbortSignal): Promise<void> {
    this.deps.log.debug({ sender: this.address }, 'transaction sender started');
    while (!signal.aborted) {
      try {
        const step = await this.step(signal);
        if (this.backoff.attempts > 0) this.deps.log.info({ sender: this.address }, 'chain RPC reachable again; transactions resume');
        this.backoff.reset();
        if (step === 'wait') await this.wakeup.wait(this.policy.receiptPollMs, signal);
        else if (step === 'idle') await this.wakeup.wait(Math.max(this.policy.receiptPollMs, 5_000), signal);
      } catch (err) {
        if (signal.aborted) break;
        const delay = this.backoff.next();
        this.deps.log.warn(
          { sender: this.address, err: describeRpcError(err), retryInMs: delay, attempt: this.backoff.attempts },
          'chain RPC call failed; retrying',
        );
        await sleep(delay, signal).catch(() => undefined);
      }
    }
    this.deps.log.debug({ sender: this.address }, 'transaction sender stopped');
  }

  private async step(signal: AbortSignal): Promise<Step> {
    const entry = this.deps.outbox.nextOpen(this.address, this.deps.chainId);
    if (!entry) return 'idle';
    signal.throwIfAborted();
    if (entry.state === 'queued') return this.prepare(entry);
    return this.follow(entry);
  }

  /** Assigns a nonce, signs, records, then broadcasts. */
  private async prepare(entry: OutboxEntry): Promise<Step> {
    const { rpc } = this.deps;
    let gasEstimate: bigint;
    try {
      gasEstimate = await rpc.estimateGas({ from: this.address, to: entry.to, data: entry.data, value: entry.value });
    } catch (err) {
      if (isRevert(err)) {
        const reason = this.revertReason(err);
        this.finish(entry, { state: 'failed', code: 'TX_REJECTED', error: `would revert: ${reason}` });
        this.deps.log.warn({ key: entry.key, reason }, 'transaction not sent: the contract would refuse it');
        return 'again';
      }
      throw err;
    }
    const gasLimit = gasLimitFor(gasEstimate, this.policy);
    const nonce = await this.nextNonce();
    const fees = await currentFees(this.deps.rpc, this.policy);
    const attempt = await this.sign(entry, nonce, gasLimit, fees);
    this.deps.outbox.assignNonce(entry.id, nonce, gasLimit, attempt);
    this.deps.log.info({ key: entry.key, nonce, txHash: attempt.txHash }, 'transaction signed and recorded; broadcasting');
    const recorded = this.deps.outbox.attempts(entry.id).at(-1)!;
    await this.broadcast(entry, recorded);
    return 'wait';
  }

  /** A transaction is out: look for a receipt, wait for depth, re-broadcast or bump fees. */
  private async follow(entry: OutboxEntry): Promise<Step> {
    const { rpc, clock } = this.deps;
    const attempts = this.deps.outbox.attempts(entry.id);
    const latest = attempts.at(-1);
    if (!latest || entry.nonce === null || entry.gasLimit === null) {
      this.finish(entry, { state: 'failed', code: 'TX_REJECTED', error: 'outbox entry has no signed transaction' });
      return 'again';
    }
    const receipt = await this.findReceipt(attempts);
    if (receipt) {
      const head = await rpc.getBlockNumber();
      if (head < receipt.blockNumber + this.policy.confirmations) return 'wait';
      // Read it again at depth: a reorg may have moved or dropped it since.
      const settled = await rpc.getTransactionReceipt(receipt.hash);
      if (!settled || settled.blockHash !== receipt.blockHash) return 'wait';
      if (settled.status === 1) {
        this.finish(entry, { state: 'confirmed', txHash: settled.hash, blockNumber: settled.blockNumber });
        this.deps.log.info({ key: entry.key, txHash: settled.hash, block: settled.blockNumber }, 'transaction confirmed');
      } else {
        const error = await this.replayRevert(entry, settled.blockNumber);
        this.finish(entry, { state: 'reverted', code: 'TX_REVERTED', txHash: settled.hash, blockNumber: settled.blockNumber, error });
        this.deps.log.warn({ key: entry.key, txHash: settled.hash, error }, 'transaction mined but reverted');
      }
      return 'again';
    }

    const chainNonce = await rpc.getTransactionCount(this.address, 'latest');
    if (chainNonce > entry.nonce) {
      // Our nonce is used, but by none of the transactions we signed for it (checked just above;
      // look once more in case it was mined in between).
      if (await this.findReceipt(attempts)) return 'again';
      this.finish(entry, {
        state: 'failed',
        code: 'TX_NONCE_TAKEN',
        error: `nonce ${entry.nonce} was used by a transaction this daemon did not send; is the key used elsewhere?`,
      });
      this.deps.log.error({ key: entry.key, nonce: entry.nonce }, 'nonce taken by another transaction; the intent is marked failed');
      return 'again';
    }

    const now = clock.now();
    // At the fee cap there is nothing to bump to: the transaction out is re-broadcast on its cadence.
    const atCap = latest.maxFeePerGas >= this.policy.maxFeePerGasCap;
    if (!atCap && now - latest.createdAt >= this.policy.bumpAfterMs) {
      await this.bump(entry, latest);
      return 'wait';
    }
    if (latest.broadcastAt === null || now - latest.broadcastAt >= this.policy.rebroadcastMs) {
      await this.broadcast(entry, latest);
    }
    return 'wait';
  }

  private async bump(entry: OutboxEntry, previous: OutboxAttempt): Promise<void> {
    const fees = replacementFees(previous, await currentFees(this.deps.rpc, this.policy), this.policy);
    const { maxFeePerGas } = fees;
    if (maxFeePerGas <= previous.maxFeePerGas) {
      // At the cap: keep the transaction we have out, just make sure nodes still hold it.
      this.deps.log.warn({ key: entry.key, maxFeePerGas: maxFeePerGas.toString() }, 'fee cap reached; not bumping further');
      await this.broadcast(entry, previous, false);
      return;
    }
    const attempt = await this.sign(entry, entry.nonce!, entry.gasLimit!, fees);
    this.deps.outbox.addAttempt(entry.id, attempt);
    this.deps.log.info(
      { key: entry.key, nonce: entry.nonce, txHash: attempt.txHash, maxFeePerGas: maxFeePerGas.toString() },
      'transaction not mined in time; replacing it with higher fees',
    );
    await this.broadcast(entry, this.deps.outbox.attempts(entry.id).at(-1)!, false);
  }

  private async broadcast(entry: OutboxEntry, attempt: OutboxAttempt, mayBump = true): Promise<void> {
    try {
      await this.deps.rpc.broadcastTransaction(attempt.rawTx);
    } catch (err) {
      const refusal = classifyBroadcastError(err);
      if (refusal === 'known') {
        // The node has it, or something with this nonce is mined: the receipt check decides.
      } else if (refusal === 'underpriced') {
        if (!mayBump) throw err;
        this.deps.log.warn({ key: entry.key, err: describeRpcError(err) }, 'transaction underpriced; bumping fees');
        await this.bump(entry, attempt);
        return;
      } else if (refusal === 'refused') {
        // The node will never take it; keep it and retry later (funds may arrive) but say so.
        this.deps.log.error({ key: entry.key, err: describeRpcError(err) }, 'the node refused the transaction; will retry');
        throw err;
      } else {
        throw err;
      }
    }
    this.deps.outbox.markBroadcast(attempt.id, this.deps.clock.now());
  }

  private async sign(
    entry: OutboxEntry,
    nonce: number,
    gasLimit: bigint,
    fees: Fees,
  ): Promise<Omit<OutboxAttempt, 'id' | 'outboxId' | 'broadcastAt'>> {
    const rawTx = await this.deps.signer.signTransaction({
      type: 2,
      chainId: this.deps.chainId,
      nonce,
      to: entry.to,
      data: entry.data,
      value: entry.value,
      gasLimit,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    });
    return {
      txHash: Transaction.from(rawTx).hash!,
      rawTx,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      createdAt: this.deps.clock.now(),
    };
  }

  /**
   * The chain's next nonce, but never one a transaction still out holds. (Finished entries do not
   * count: the chain's count covers them, and a devnet reset must not leave a gap.)
   */
  private async nextNonce(): Promise<number> {
    const chain = await this.deps.rpc.getTransactionCount(this.address, 'latest');
    const used = this.deps.outbox.highestPendingNonce(this.address, this.deps.chainId);
    return used === undefined ? chain : Math.max(chain, used + 1);
  }

  private async findReceipt(attempts: readonly OutboxAttempt[]): Promise<TransactionReceipt | null> {
    for (const attempt of [...attempts].reverse()) {
      const receipt = await this.deps.rpc.getTransactionReceipt(attempt.txHash);
      if (receipt) return receipt;
    }
    return null;
  }

  /** Replays a reverted transaction as a call at its block to learn the custom error. */
  private async replayRevert(entry: OutboxEntry, blockNumber: number): Promise<string> {
    try {
      await this.deps.rpc.call({ from: this.address, to: entry.to, data: entry.data, value: entry.value, blockTag: blockNumber - 1 });
      return 'reverted';
    } catch (err) {
      return isRevert(err) ? this.revertReason(err) : 'reverted';
    }
  }

  private revertReason(err: unknown): string {
    const data = (err as { data?: string }).data;
    return this.deps.describeRevert?.(data) ?? (err as { shortMessage?: string }).shortMessage ?? describeRpcError(err);
  }

  private finish(entry: OutboxEntry, outcome: TxOutcome): void {
    this.deps.outbox.finish(entry.id, outcome, this.deps.clock.now());
    this.waiters.wake(entry.key);
  }
}

