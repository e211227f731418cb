import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Store } from '../store';
import type { Clock } from '../util/clock';
import { next, type LeaseEffect, type LeaseEvent, type LeaseSnapshot } from './state-machine';

/** Runs one effect for one lease. Long effects start background work and return at once. */
export type EffectExecutor<E extends LeaseEffect = LeaseEffect> = (leaseId: string, effect: E) => void | Promise<void>;

/** One executor per effect type: the orchestrator knows no effect's meaning. */
export type EffectExecutors = { [T in LeaseEffect['type']]: EffectExecutor<Extract<LeaseEffect, { type: T }>> };

export interface OrchestratorDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  /** Called once a transition is stored, before its effects run (the engine ends a lease's tasks). */
  onTransition?: (leaseId: string, to: LeaseSnapshot) => void;
}

/**
 * Feeds events to the state machine, one at a time per lease and in order: persists each
 * transition (with its reason) before it runs the transition's effects through the executor map.
 */
export class LeaseOrchestrator {
  private readonly queues = new Map<string, Promise<void>>();
  private executors: EffectExecutors | undefined;

  constructor(private readonly deps: OrchestratorDeps) {}

  /** Set once the engine's parts exist (they dispatch back into this orchestrator). */
  use(executors: EffectExecutors): void {
    this.executors = executors;
  }

  dispatch(leaseId: string, event: LeaseEvent, reason: string): Promise<void> {
    const previous = this.queues.get(leaseId) ?? Promise.resolve();
    const run = previous.then(() => this.apply(leaseId, event, reason)).catch((err: unknown) => {
      this.deps.log.error({ leaseId, event: event.type, err: describeError(err) }, 'lease event failed');
    });
    this.queues.set(leaseId, run);
    void run.finally(() => {
      if (this.queues.get(leaseId) === run) this.queues.delete(leaseId);
    });
    return run;
  }

  /** Runs one effect outside a transition (recovery re-runs what a crash cut short). */
  async run(leaseId: string, effect: LeaseEffect): Promise<void> {
    const executors = this.executors;
    if (!executors) throw new Error('the orchestrator has no executors');
    await (executors[effect.type] as EffectExecutor)(leaseId, effect);
  }

  /** Waits for every queued event. */
  async idle(): Promise<void> {
    while (this.queues.size > 0) await Promise.allSettled([...this.queues.values()]);
  }

  private async apply(leaseId: string, event: LeaseEvent, reason: string): Promise<void> {
    const { store, clock, log } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease) return;
    const snapshot: LeaseSnapshot = { state: lease.state, endReason: lease.endReason ?? undefined, exitCode: lease.exitCode };
    const transition = next(snapshot, event);
    if (!transition.applied) {
      log.debug({ leaseId, state: lease.state, event: event.type }, 'event does not apply in this state');
      return;
    }
    const now = Math.floor(clock.now() / 1000);
    const to = transition.lease;
    store.leases.update(
      leaseId,
      {
        state: to.state,
        endReason: to.endReason ?? null,
        exitCode: to.exitCode ?? null,
        detail: reason,
        updatedAt: now,
        ...(event.type === 'container-started' ? { containerId: event.containerId } : {}),
      },
      { fromState: lease.state, toState: to.state, event: event.type, reason, at: now },
    );
    log.info({ leaseId, from: lease.state, to: to.state, event: event.type, reason }, `lease ${to.state}`);
    this.deps.onTransition?.(leaseId, to);
    for (const effect of transition.effects) await this.run(leaseId, effect);
  }
}
