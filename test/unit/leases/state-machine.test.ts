import { next, type LeaseEffect, type LeaseEvent, type LeaseSnapshot, type LeaseState } from '../../../src/leases';

const at = (state: LeaseState, extra: Partial<LeaseSnapshot> = {}): LeaseSnapshot => ({ state, ...extra });
const types = (effects: LeaseEffect[]) => effects.map((e) => e.type);

describe('lease state machine', () => {
  const cases: [string, LeaseSnapshot, LeaseEvent, LeaseState, string[]][] = [
    ['an unused quote expires and frees its reservation', at('quoted'), { type: 'quote-expired' }, 'expired', ['release-reservation']],
    ['an opened quote starts the pull', at('quoted'), { type: 'opened' }, 'opened', ['pull-image']],
    ['a lease we will not run is closed unrun', at('quoted'), { type: 'refused', detail: 'manifest hash differs' }, 'rejected', ['release-reservation', 'close-unrun']],
    ['a pulled image is started', at('opened'), { type: 'image-ready', digest: 'sha256:ab' }, 'pulling', ['start-container']],
    ['a started container is running', at('pulling'), { type: 'container-started', containerId: 'c1' }, 'running', []],
    ['a failed pull fails the lease and settles it', at('opened'), { type: 'pull-failed', detail: 'denied' }, 'failed', ['final-usage', 'release-allocation', 'settle']],
    ['a failed start fails the lease and settles it', at('pulling'), { type: 'start-failed', detail: 'no runtime' }, 'failed', ['final-usage', 'release-allocation', 'settle']],
    ['a tenant close before start bills and settles without a stop', at('opened'), { type: 'end-requested', reason: 'tenant-closed' }, 'stopping', ['final-usage', 'release-allocation', 'settle']],
    ['a workload exiting on its own is settled', at('running'), { type: 'container-exited', exitCode: 0, oomKilled: false }, 'stopping', ['final-usage', 'release-allocation', 'settle']],
    ['max duration stops the container first', at('running'), { type: 'end-requested', reason: 'max-duration' }, 'stopping', ['stop-container']],
    ['a container gone while we were down is billed to the last sample', at('running'), { type: 'container-vanished' }, 'stopping', ['final-usage', 'release-allocation', 'settle']],
    ['the stopped container is then settled', at('stopping', { endReason: 'max-duration' }), { type: 'container-exited', exitCode: 143, oomKilled: false }, 'stopping', ['final-usage', 'release-allocation', 'settle']],
    ['settlement completes the lease', at('stopping', { endReason: 'exited', finalised: true }), { type: 'settlement-done' }, 'settled', []],
  ];

  it.each(cases)('%s', (_name, lease, event, state, effects) => {
    const result = next(lease, event);
    expect(result.applied).toBe(true);
    expect(result.lease.state).toBe(state);
    expect(types(result.effects)).toEqual(effects);
  });

  const ignored: [string, LeaseSnapshot, LeaseEvent][] = [
    ['a second end request while stopping', at('stopping', { endReason: 'max-duration' }), { type: 'end-requested', reason: 'tenant-closed' }],
    ['an exit after the lease was finalised', at('stopping', { endReason: 'exited', finalised: true }), { type: 'container-exited', exitCode: 1, oomKilled: false }],
    ['settlement before finalising', at('stopping', { endReason: 'max-duration' }), { type: 'settlement-done' }],
    ['anything once settled', at('settled'), { type: 'opened' }],
    ['an opening after the quote expired', at('expired'), { type: 'opened' }],
    ['a container start before the image is ready', at('opened'), { type: 'container-started', containerId: 'c1' }],
    ['an exit of a container that was never started', at('quoted'), { type: 'container-exited', exitCode: 0, oomKilled: false }],
  ];

  it.each(ignored)('ignores %s', (_name, lease, event) => {
    const result = next(lease, event);
    expect(result).toEqual({ lease, effects: [], applied: false });
  });

  it('keeps the reason that asked for the stop, and records the exit code it caused', () => {
    const stopping = next(at('running'), { type: 'end-requested', reason: 'escrow-exhausted' }).lease;
    const result = next(stopping, { type: 'container-exited', exitCode: 137, oomKilled: false });
    expect(result.lease).toEqual({ state: 'stopping', endReason: 'escrow-exhausted', exitCode: 137, finalised: true });
    expect(result.effects).toContainEqual({ type: 'settle', reason: 'escrow-exhausted', exitCode: 137 });
  });

  it('settles a workload that exited with its exit code', () => {
    const result = next(at('running'), { type: 'container-exited', exitCode: 3, oomKilled: true });
    expect(result.effects).toContainEqual({ type: 'settle', reason: 'exited', exitCode: 3 });
  });
});
