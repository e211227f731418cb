import { sleep } from '../util/sleep';

export { sleep };

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 250, maxMs: 30_000 };

/** Exponential backoff with full jitter; `reset()` after a success. */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly policy: BackoffPolicy = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  get attempts(): number {
    return this.failures;
  }

  reset(): void {
    this.failures = 0;
  }

  /** The next delay; grows 2x per failure up to maxMs, jittered into [delay/2, delay]. */
  next(): number {
    const ceiling = Math.min(this.policy.maxMs, this.policy.initialMs * 2 ** Math.min(this.failures, 30));
    this.failures += 1;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }
}

/** A wake-up flag that a loop can sleep on: `wait(ms)` returns early when `wake()` is called. */
export class Wakeup {
  private pending = false;
  private resolve: (() => void) | undefined;

  wake(): void {
    this.pending = true;
    this.resolve?.();
  }

  async wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return;
    }
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.race([
        sleep(ms, controller.signal).catch(() => undefined),
        new Promise<void>((resolve) => {
          this.resolve = resolve;
        }),
      ]);
    } finally {
      this.resolve = undefined;
      this.pending = false;
      controller.abort();
      signal?.removeEventListener('abort', onAbort);
    }
    signal?.throwIfAborted();
  }
}
