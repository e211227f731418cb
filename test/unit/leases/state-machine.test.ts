import { next, terminalState, type LeaseEffect, type LeaseEvent, type LeaseSnapshot, type LeaseState } from '../../../src/leases';

const at = (state: LeaseState, extra: Partial<LeaseSnapshot> = {}): LeaseSnapshot => ({ state, ...extra });
const types = (effects: LeaseEffect[]) => effects.map((e) => e.type);
const ENDED = ['release-allocation', 'final-usage'];

describe('lease state machine', () => {
  const cases: [string, LeaseSnapshot, LeaseEvent, LeaseState, string[]][] = [
    ['an opened quote starts the pull', at('quoted'), { type: 'opened' }, 'pulling', ['pull-image']],
    ['a lease we will not run frees its hold and is closed unrun', at('quoted'), { type: 'refused', detail: 'manifest hash differs' }, 'settling', ['release-allocation', 'settle']],
    ['a pulled image is started', at('pulling'), { type: 'image-ready', digest: 'sha256:ab' }, 'starting', ['start-container']],
    ['a started container is running and metered', at('starting'), { type: 'container-started', containerId: 'c1' }, 'running', ['watch']],
    ['a failed pull ends the lease and bills it', at('pulling'), { type: 'pull-failed', detail: 'denied' }, 'finishing', ENDED],
    ['a failed start ends the lease and bills it', at('starting'), { type: 'start-failed', detail: 'no runtime' }, 'finishing', ENDED],
    ['a tenant close before the pull is done bills without a stop', at('pulling'), { type: 'end-requested', reason: 'tenant-closed' }, 'finishing', ENDED],
    ['a tenant close while starting bills without a stop', at('starting'), { type: 'end-requested', reason: 'tenant-closed' }, 'finishing', ENDED],
    ['a workload exiting on its own is billed', at('running'), { type: 'container-exited', exitCode: 0, oomKilled: false }, 'finishing', ENDED],
    ['max duration stops the container first', at('running'), { type: 'end-requested', reason: 'max-duration' }, 'stopping', ['stop-container']],
    ['a container gone while we were down is billed to the last sample', at('running'), { type: 'container-vanished' }, 'finishing', ENDED],
    ['the stopped container is then billed', at('stopping', { endReason: 'max-duration' }), { type: 'container-exited', exitCode: 143, oomKilled: false }, 'finishing', ENDED],
    ['a container that could not be stopped is billed to the last sample', at('stopping', { endReason: 'max-duration' }), { type: 'container-vanished' }, 'finishing', ENDED],
    ['the final usage stored, settlement takes over', at('finishing', { endReason: 'exited' }), { type: 'usage-final' }, 'settling', ['settle']],
    ['settlement completes a lease that ran', at('settling', { endReason: 'exited' }), { type: 'settlement-done' }, 'settled', []],
    ['settlement completes a lease that never ran as failed', at('settling', { endReason: 'pull-failed' }), { type: 'settlement-done' }, 'failed', []],
    ['settlement completes a refused lease as rejected', at('settling', { endReason: 'refused' }), { type: 'settlement-done' }, 'rejected', []],
  ];

  it.each(cases)('%s', (_name, lease, event, state, effects) => {
    const result = next(lease, event);
    expect(result.applied).toBe(true);
    expect(result.lease.state).toBe(state);
    expect(types(result.effects)).toEqual(effects);
  });

  const ignored: [string, LeaseSnapshot, LeaseEvent][] = [
    ['a second end request while stopping', at('stopping', { endReason: 'max-duration' }), { type: 'end-requested', reason: 'tenant-closed' }],
    ['an exit after the lease was finished', at('finishing', { endReason: 'exited' }), { type: 'container-exited', exitCode: 1, oomKilled: false }],
    ['an exit while settling', at('settling', { endReason: 'exited' }), { type: 'container-exited', exitCode: 1, oomKilled: false }],
    ['settlement before the final usage', at('finishing', { endReason: 'max-duration' }), { type: 'settlement-done' }],
    ['settlement of a lease still stopping', at('stopping', { endReason: 'max-duration' }), { type: 'settlement-done' }],
    ['a final usage of a running lease', at('running'), { type: 'usage-final' }],
    ['anything once settled', at('settled'), { type: 'opened' }],
    ['anything once failed', at('failed'), { type: 'settlement-done' }],
    ['anything once rejected', at('rejected'), { type: 'opened' }],
    ['a container start before the image is ready', at('pulling'), { type: 'container-started', containerId: 'c1' }],
    ['an exit of a container that was never started', at('quoted'), { type: 'container-exited', exitCode: 0, oomKilled: false }],
    ['an end request before the lease was admitted', at('quoted'), { type: 'end-requested', reason: 'operator-drain' }],
  ];

  it.each(ignored)('ignores %s', (_name, lease, event) => {
    const result = next(lease, event);
    expect(result).toEqual({ lease, effects: [], applied: false });
  });

  it('keeps the reason that asked for the stop, and records the exit code it caused', () => {
    const stopping = next(at('running'), { type: 'end-requested', reason: 'escrow-exhausted' }).lease;
    const result = next(stopping, { type: 'container-exited', exitCode: 137, oomKilled: false });
    expect(result.lease).toEqual({ state: 'finishing', endReason: 'escrow-exhausted', exitCode: 137 });
    expect(result.effects).toContainEqual({ type: 'final-usage', reason: 'escrow-exhausted' });
  });

  it('bills a workload that exited with its exit code', () => {
    const result = next(at('running'), { type: 'container-exited', exitCode: 3, oomKilled: true });
    expect(result.lease).toEqual({ state: 'finishing', endReason: 'exited', exitCode: 3 });
  });

  it('names the terminal state by how the lease ended', () => {
    expect(terminalState('exited')).toBe('settled');
    expect(terminalState('tenant-closed')).toBe('settled');
    expect(terminalState('start-failed')).toBe('failed');
    expect(terminalState('refused')).toBe('rejected');
  });
});
