import type { EndReason, LeaseState } from '../vocabulary';
import type { LeaseEffect, LeaseEvent } from './state-machine';

/** What the backend showed of a lease's workload at start-up (from reconcile). */
export type ObservedWorkload = 'running' | 'stopped' | 'missing';

/** What a lease was when the daemon went down: its state, and why it was ending if it was. */
export interface StoredLeaseFacts {
  state: LeaseState;
  endReason: EndReason | null;
}

export type ResumeStep =
  /** Feed this event to the state machine, as if it had just happened. */
  | { type: 'dispatch'; event: LeaseEvent; reason: string }
  /** Run this effect of the state the lease is already in (it may have been cut short). */
  | { type: 'run'; effect: LeaseEffect };

/**
 * Recovery after any stop, kill -9 included: given what the store says a lease was and what the
 * backend shows now, the steps that take it on from where it was. Pure, so every pair is a row
 * in a table test. Effects are idempotent, so re-running one that had finished is harmless.
 * `quoted` and `settling` need nothing here: the inbox replays an unhandled LeaseOpened, and the
 * settlement loop picks up every settling lease.
 */
export function resume(stored: StoredLeaseFacts, observed: ObservedWorkload): ResumeStep[] {
  const run = (effect: LeaseEffect): ResumeStep => ({ type: 'run', effect });
  const vanished: ResumeStep = { type: 'dispatch', event: { type: 'container-vanished' }, reason: 'the container vanished while the daemon was down' };
  switch (stored.state) {
    case 'pulling':
      return [run({ type: 'pull-image' })];
    case 'starting':
      // A start cut short may have left a workload: start is idempotent and returns it.
      return [run({ type: 'start-container' })];
    case 'running':
      // Adopted: metering resumes from its last record; a stopped one reports its exit at once.
      return observed === 'missing' ? [vanished] : [run({ type: 'watch' })];
    case 'stopping':
      if (observed === 'running') return [run({ type: 'stop-container', reason: stored.endReason ?? 'operator-drain' })];
      if (observed === 'stopped') return [run({ type: 'watch' })];
      return [vanished];
    case 'finishing':
      return [run({ type: 'release-allocation' }), run({ type: 'final-usage', reason: stored.endReason ?? 'exited' })];
    default:
      return [];
  }
}
