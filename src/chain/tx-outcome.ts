import type { OutboxEntry } from '../store';

export type TxOutcome =
  | { state: 'confirmed'; txHash: string; blockNumber: number }
  | { state: 'reverted'; code: 'TX_REVERTED'; txHash: string; blockNumber: number; error: string }
  /** TX_REJECTED: the contract would refuse it, so it was never sent; TX_NONCE_TAKEN: see the error. */
  | { state: 'failed'; code: 'TX_REJECTED' | 'TX_NONCE_TAKEN'; error: string };

export function outcomeOf(entry: OutboxEntry): TxOutcome | undefined {
  switch (entry.state) {
    case 'confirmed':
      return { state: 'confirmed', txHash: entry.txHash!, blockNumber: entry.blockNumber! };
    case 'reverted':
      return { state: 'reverted', code: 'TX_REVERTED', txHash: entry.txHash!, blockNumber: entry.blockNumber!, error: entry.error ?? 'reverted' };
    case 'failed':
      return { state: 'failed', code: entry.errorCode === 'TX_NONCE_TAKEN' ? 'TX_NONCE_TAKEN' : 'TX_REJECTED', error: entry.error ?? 'failed' };
    default:
      return undefined;
  }
}

/** Callers waiting for intents to finish, by key: the sender wakes them when it finishes one. */
export class OutcomeWaiters {
  private readonly waiters = new Map<string, (() => void)[]>();

  /** Resolves when the intent under `key` may have finished: on `wake(key)`, or after a second. */
  next(key: string, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const list = this.waiters.get(key) ?? [];
      const done = (): void => {
        clearTimeout(timer);
        const left = (this.waiters.get(key) ?? []).filter((w) => w !== done);
        if (left.length > 0) this.waiters.set(key, left);
        else this.waiters.delete(key);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      // Also re-read now and then: another sender instance (a restarted one) may finish it.
      const timer = setTimeout(done, 1_000);
      list.push(done);
      this.waiters.set(key, list);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  wake(key: string): void {
    const waiters = this.waiters.get(key) ?? [];
    this.waiters.delete(key);
    for (const wake of waiters) wake();
  }
}
