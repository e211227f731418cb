import { sleep } from './sleep';

/**
 * Time is injected so tests drive it; production code never calls Date.now() or waits on a timer
 * of its own in a loop: loops sleep on their clock, so a test moves them by moving the clock.
 */
export interface Clock {
  now(): number;
  /** Resolves after `ms` of this clock's time, or rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = { now: () => Date.now(), sleep };

interface Sleeper {
  until: number;
  wake: () => void;
}

/**
 * A clock for tests: it stands still until `advance` or `set` moves it, and then wakes the
 * sleepers whose time has come, earliest first. With `autoAdvance`, a sleep moves the clock to
 * its own end at once (after a turn of the event loop), for code that should run through its
 * waits as fast as it can.
 */
export class ManualClock implements Clock {
  private sleepers: Sleeper[] = [];

  constructor(
    private current = 0,
    private readonly options: { autoAdvance?: boolean } = {},
  ) {}

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(signal?.reason);
      };
      const sleeper: Sleeper = {
        until: this.current + Math.max(0, ms),
        wake: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (this.options.autoAdvance) setImmediate(() => this.set(Math.max(this.current, sleeper.until)));
    });
  }

  /** How many sleeps are waiting: a test waits for a loop to reach its sleep before moving time. */
  get pendingSleeps(): number {
    return this.sleepers.length;
  }

  advance(ms: number): void {
    this.set(this.current + ms);
  }

  set(time: number): void {
    this.current = time;
    const due = this.sleepers.filter((s) => s.until <= time).sort((a, b) => a.until - b.until);
    this.sleepers = this.sleepers.filter((s) => s.until > time);
    for (const sleeper of due) sleeper.wake();
  }
}

export function manualClock(start = 0, options: { autoAdvance?: boolean } = {}): ManualClock {
  return new ManualClock(start, options);
}
