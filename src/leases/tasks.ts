import { describeError } from '../errors';
import type { Logger } from '../log';

/**
 * The engine's background work: long effects (pull, start, stop, metering) run here, each under
 * a signal that aborts on shutdown or when its lease ends; `stop()` aborts them all and waits.
 */
export class LeaseTasks {
  private readonly tasks = new Set<Promise<unknown>>();
  private readonly leaseAborts = new Map<string, AbortController>();
  private controller = new AbortController();

  constructor(private readonly log: Logger) {}

  /** The engine-wide signal: aborted on shutdown. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Aborts on shutdown or after `timeoutMs`: the bound of one call to the backend or the chain. */
  within(timeoutMs: number): AbortSignal {
    return AbortSignal.any([this.controller.signal, AbortSignal.timeout(timeoutMs)]);
  }

  restart(): void {
    this.controller = new AbortController();
  }

  /** Aborts on shutdown or when `endLease` is called for this lease. */
  leaseSignal(leaseId: string): AbortSignal {
    let controller = this.leaseAborts.get(leaseId);
    if (!controller || controller.signal.aborted) {
      controller = new AbortController();
      this.leaseAborts.set(leaseId, controller);
    }
    return AbortSignal.any([controller.signal, this.controller.signal]);
  }

  /** The lease ended: its pull, start and metering stop here. */
  endLease(leaseId: string): void {
    this.leaseAborts.get(leaseId)?.abort();
    this.leaseAborts.delete(leaseId);
  }

  /** Runs a long effect in the background; shutdown aborts and awaits it. */
  run(leaseId: string, task: () => Promise<void>): void {
    const promise = task().catch((err: unknown) => {
      if (!this.controller.signal.aborted) this.log.error({ leaseId, err: describeError(err) }, 'lease task failed');
    });
    this.tasks.add(promise);
    void promise.finally(() => this.tasks.delete(promise));
  }

  /** Keeps a loop to be awaited at shutdown. */
  track(loop: Promise<unknown>): void {
    this.tasks.add(loop);
    void loop.finally(() => this.tasks.delete(loop));
  }

  async stop(): Promise<void> {
    this.controller.abort();
    for (const c of this.leaseAborts.values()) c.abort();
    this.leaseAborts.clear();
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }
}
