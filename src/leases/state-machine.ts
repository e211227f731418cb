/**
 * The lease lifecycle (DESIGN.md §4) as a pure function: `next(state, event)` returns the new
 * state and the effects the orchestrator must run, in order. No I/O here, so every transition is
 * a row in a table test. The orchestrator persists the transition (with its reason) before it
 * runs the effects, and feeds their outcomes back as events.
 */

export type LeaseState =
  | 'quoted'
  | 'opened'
  | 'pulling'
  | 'running'
  /** Ending: the container is being stopped, then the final usage is billed and claimed. */
  | 'stopping'
  | 'settled'
  | 'failed'
  | 'rejected'
  | 'expired';

/** Why a lease ended; recorded with the final usage record and shown to the tenant. */
export type EndReason =
  | 'exited'
  | 'max-duration'
  | 'escrow-exhausted'
  | 'tenant-closed'
  | 'operator-drain'
  | 'disk-quota'
  | 'container-vanished'
  | 'pull-failed'
  | 'start-failed';

export type LeaseEvent =
  | { type: 'quote-expired' }
  /** The tenant opened the lease on-chain with our quote, and the manifest hash matches. */
  | { type: 'opened' }
  /** Opened on-chain, but we will not run it (manifest hash differs, quote not ours). */
  | { type: 'refused'; detail: string }
  | { type: 'image-ready'; digest: string }
  | { type: 'pull-failed'; detail: string }
  | { type: 'container-started'; containerId: string }
  | { type: 'start-failed'; detail: string }
  | { type: 'end-requested'; reason: Exclude<EndReason, 'exited' | 'container-vanished' | 'pull-failed' | 'start-failed'> }
  | { type: 'container-exited'; exitCode: number; oomKilled: boolean }
  | { type: 'container-vanished' }
  /** The final checkpoint is signed, claimed (or redeemed) and the lease closed on-chain. */
  | { type: 'settlement-done' };

export type LeaseEffect =
  | { type: 'release-reservation' }
  | { type: 'pull-image' }
  | { type: 'start-container' }
  | { type: 'stop-container'; reason: EndReason }
  /** Take the final usage sample (from the container's last counters, or the last sample). */
  | { type: 'final-usage'; reason: EndReason }
  /** The lease's CPU, memory, GPUs and ports go back to the ledger. */
  | { type: 'release-allocation' }
  /** Final checkpoint with resultDigest, then claim and close on-chain. */
  | { type: 'settle'; reason: EndReason; exitCode: number | null }
  /** Opened on-chain but never run: close it so the tenant's deposit returns. */
  | { type: 'close-unrun'; detail: string };

export interface LeaseSnapshot {
  state: LeaseState;
  /** Set once the lease is ending: the first reason wins, later ones are ignored. */
  endReason?: EndReason;
  exitCode?: number | null;
  /** The final usage and settlement effects were issued; they are never issued twice. */
  finalised?: boolean;
}

export interface Transition {
  lease: LeaseSnapshot;
  effects: LeaseEffect[];
  /** False when the event does not apply in this state; the lease is unchanged. */
  applied: boolean;
}

export const TERMINAL_STATES: ReadonlySet<LeaseState> = new Set(['settled', 'failed', 'rejected', 'expired']);

const ignore = (lease: LeaseSnapshot): Transition => ({ lease, effects: [], applied: false });

/** The container is gone (or never ran): bill what was used, free the capacity, settle. */
function finalise(lease: LeaseSnapshot, state: LeaseState, reason: EndReason, exitCode: number | null): Transition {
  return {
    lease: { ...lease, state, endReason: lease.endReason ?? reason, exitCode, finalised: true },
    effects: [
      { type: 'final-usage', reason: lease.endReason ?? reason },
      { type: 'release-allocation' },
      { type: 'settle', reason: lease.endReason ?? reason, exitCode },
    ],
    applied: true,
  };
}

export function next(lease: LeaseSnapshot, event: LeaseEvent): Transition {
  if (TERMINAL_STATES.has(lease.state)) return ignore(lease);

  switch (lease.state) {
    case 'quoted':
      if (event.type === 'quote-expired') {
        return { lease: { ...lease, state: 'expired' }, effects: [{ type: 'release-reservation' }], applied: true };
      }
      if (event.type === 'opened') {
        return { lease: { ...lease, state: 'opened' }, effects: [{ type: 'pull-image' }], applied: true };
      }
      if (event.type === 'refused') {
        return {
          lease: { ...lease, state: 'rejected' },
          effects: [{ type: 'release-reservation' }, { type: 'close-unrun', detail: event.detail }],
          applied: true,
        };
      }
      return ignore(lease);

    case 'opened':
    case 'pulling':
      if (event.type === 'image-ready' && lease.state === 'opened') {
        return { lease: { ...lease, state: 'pulling' }, effects: [{ type: 'start-container' }], applied: true };
      }
      if (event.type === 'container-started' && lease.state === 'pulling') {
        return { lease: { ...lease, state: 'running' }, effects: [], applied: true };
      }
      if (event.type === 'pull-failed' || event.type === 'start-failed') {
        return finalise(lease, 'failed', event.type, null);
      }
      if (event.type === 'end-requested') {
        // Nothing runs yet: no container to stop, only the time reserved so far to bill.
        return finalise(lease, 'stopping', event.reason, null);
      }
      return ignore(lease);

    case 'running':
      if (event.type === 'end-requested') {
        return {
          lease: { ...lease, state: 'stopping', endReason: event.reason },
          effects: [{ type: 'stop-container', reason: event.reason }],
          applied: true,
        };
      }
      if (event.type === 'container-exited') return finalise(lease, 'stopping', 'exited', event.exitCode);
      if (event.type === 'container-vanished') return finalise(lease, 'stopping', 'container-vanished', null);
      return ignore(lease);

    case 'stopping':
      // The reason that asked for the stop stays the lease's reason; the exit is its consequence.
      if (!lease.finalised && event.type === 'container-exited') return finalise(lease, 'stopping', 'exited', event.exitCode);
      if (!lease.finalised && event.type === 'container-vanished') return finalise(lease, 'stopping', 'container-vanished', null);
      if (lease.finalised && event.type === 'settlement-done') {
        return { lease: { ...lease, state: 'settled' }, effects: [], applied: true };
      }
      return ignore(lease);
  }
  return ignore(lease);
}
