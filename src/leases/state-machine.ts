import { TERMINAL_STATES, type EndReason, type LeaseState } from '../vocabulary';

/**
 * The lease lifecycle as a pure function: `next(lease, event)` returns the new lease and the
 * effects the orchestrator must run, in order. No I/O here, so every transition is a row in a
 * table test. The orchestrator persists the transition (with its reason) before it runs the
 * effects, and feeds their outcomes back as events.
 *
 * quoted → pulling → starting → running → stopping → finishing → settling → settled
 *                 ↘ (pull/start failed, ended early) ↗        ↗ (refused)   ↘ failed | rejected
 *
 * Every fact the engine needs after a crash is the state: capacity is held while the lease is
 * `pulling`…`stopping`, released on entering `finishing`; the final usage is stored once it is
 * `settling`; the chain is done once it is terminal.
 */

export type { LeaseState, EndReason } from '../vocabulary';

export type LeaseEvent =
  /** The tenant opened the lease on-chain with our quote, for its manifest, tenant and deposit. */
  | { type: 'opened' }
  /** Opened on-chain, but we will not run it (not our quote, manifest hash differs…). */
  | { type: 'refused'; detail: string }
  | { type: 'image-ready'; digest: string }
  | { type: 'pull-failed'; detail: string }
  | { type: 'container-started'; containerId: string }
  | { type: 'start-failed'; detail: string }
  | { type: 'end-requested'; reason: Exclude<EndReason, 'exited' | 'container-vanished' | 'pull-failed' | 'start-failed' | 'refused'> }
  | { type: 'container-exited'; exitCode: number; oomKilled: boolean }
  /** The workload is gone, or the backend could not stop it: bill to the last sample. */
  | { type: 'container-vanished' }
  /** The final usage record and the result digest are stored. */
  | { type: 'usage-final' }
  /** The chain says the lease is settled: paid, closed, the escrow's rest returned. */
  | { type: 'settlement-done' };

export type LeaseEffect =
  /** Fetch the image and prepare the network; reports image-ready or pull-failed. */
  | { type: 'pull-image' }
  /** Create and start the workload; reports container-started or start-failed. */
  | { type: 'start-container' }
  /** Meter the running workload and wait for it to end. */
  | { type: 'watch' }
  | { type: 'stop-container'; reason: EndReason }
  /** The lease's CPU, memory, GPUs and ports (or its quote's hold) go back to the ledger. */
  | { type: 'release-allocation' }
  /** The last usage record (to the exit) and the result digest; reports usage-final. */
  | { type: 'final-usage'; reason: EndReason }
  /** Final checkpoint with resultDigest, payment, close and settle on-chain (the settlement loop's job). */
  | { type: 'settle' };

export interface LeaseSnapshot {
  state: LeaseState;
  /** Set once the lease is ending: the first reason wins, later ones are ignored. */
  endReason?: EndReason;
  exitCode?: number | null;
}

export interface Transition {
  lease: LeaseSnapshot;
  effects: LeaseEffect[];
  /** False when the event does not apply in this state; the lease is unchanged. */
  applied: boolean;
}

export { TERMINAL_STATES };

const ignore = (lease: LeaseSnapshot): Transition => ({ lease, effects: [], applied: false });

/** It ended: free the capacity, then bill what was used. The first reason stays the lease's reason. */
function finish(lease: LeaseSnapshot, reason: EndReason, exitCode: number | null): Transition {
  const endReason = lease.endReason ?? reason;
  return {
    lease: { ...lease, state: 'finishing', endReason, exitCode },
    effects: [{ type: 'release-allocation' }, { type: 'final-usage', reason: endReason }],
    applied: true,
  };
}

/** The terminal state a settled lease lands in, by how it ended. */
export function terminalState(endReason: EndReason | undefined): LeaseState {
  if (endReason === 'refused') return 'rejected';
  if (endReason === 'pull-failed' || endReason === 'start-failed') return 'failed';
  return 'settled';
}

export function next(lease: LeaseSnapshot, event: LeaseEvent): Transition {
  if (TERMINAL_STATES.has(lease.state)) return ignore(lease);

  switch (lease.state) {
    case 'quoted':
      if (event.type === 'opened') return { lease: { ...lease, state: 'pulling' }, effects: [{ type: 'pull-image' }], applied: true };
      if (event.type === 'refused') {
        // Nothing ran and nothing was used: no final usage, only the close that returns the deposit.
        return { lease: { ...lease, state: 'settling', endReason: 'refused' }, effects: [{ type: 'release-allocation' }, { type: 'settle' }], applied: true };
      }
      return ignore(lease);

    case 'pulling':
      if (event.type === 'image-ready') return { lease: { ...lease, state: 'starting' }, effects: [{ type: 'start-container' }], applied: true };
      if (event.type === 'pull-failed') return finish(lease, 'pull-failed', null);
      // Nothing runs yet: no workload to stop, only the time reserved so far to bill.
      if (event.type === 'end-requested') return finish(lease, event.reason, null);
      return ignore(lease);

    case 'starting':
      if (event.type === 'container-started') return { lease: { ...lease, state: 'running' }, effects: [{ type: 'watch' }], applied: true };
      if (event.type === 'start-failed') return finish(lease, 'start-failed', null);
      if (event.type === 'end-requested') return finish(lease, event.reason, null);
      return ignore(lease);

    case 'running':
      if (event.type === 'end-requested') {
        return { lease: { ...lease, state: 'stopping', endReason: event.reason }, effects: [{ type: 'stop-container', reason: event.reason }], applied: true };
      }
      if (event.type === 'container-exited') return finish(lease, 'exited', event.exitCode);
      if (event.type === 'container-vanished') return finish(lease, 'container-vanished', null);
      return ignore(lease);

    case 'stopping':
      // The reason that asked for the stop stays the lease's reason; the exit is its consequence.
      if (event.type === 'container-exited') return finish(lease, 'exited', event.exitCode);
      if (event.type === 'container-vanished') return finish(lease, 'container-vanished', null);
      return ignore(lease);

    case 'finishing':
      if (event.type === 'usage-final') return { lease: { ...lease, state: 'settling' }, effects: [{ type: 'settle' }], applied: true };
      return ignore(lease);

    case 'settling':
      if (event.type === 'settlement-done') return { lease: { ...lease, state: terminalState(lease.endReason) }, effects: [], applied: true };
      return ignore(lease);
  }
  return ignore(lease);
}
