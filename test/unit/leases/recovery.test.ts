import { resume, type ObservedWorkload, type ResumeStep } from '../../../src/leases/recovery';
import type { EndReason, LeaseState } from '../../../src/vocabulary';

const run = (type: string, extra: Record<string, unknown> = {}) => ({ type: 'run', effect: { type, ...extra } });
const vanished = { type: 'dispatch', event: { type: 'container-vanished' }, reason: 'the container vanished while the daemon was down' };

describe('recovery: resume(stored, observed)', () => {
  const cases: [LeaseState, EndReason | null, ObservedWorkload, unknown[]][] = [
    ['quoted', null, 'missing', []],
    ['pulling', null, 'missing', [run('pull-image')]],
    ['pulling', null, 'stopped', [run('pull-image')]],
    ['starting', null, 'missing', [run('start-container')]],
    ['starting', null, 'running', [run('start-container')]],
    ['running', null, 'running', [run('watch')]],
    ['running', null, 'stopped', [run('watch')]],
    ['running', null, 'missing', [vanished]],
    ['stopping', 'max-duration', 'running', [run('stop-container', { reason: 'max-duration' })]],
    ['stopping', null, 'running', [run('stop-container', { reason: 'operator-drain' })]],
    ['stopping', 'tenant-closed', 'stopped', [run('watch')]],
    ['stopping', 'tenant-closed', 'missing', [vanished]],
    ['finishing', 'exited', 'stopped', [run('release-allocation'), run('final-usage', { reason: 'exited' })]],
    ['finishing', 'pull-failed', 'missing', [run('release-allocation'), run('final-usage', { reason: 'pull-failed' })]],
    ['settling', 'exited', 'stopped', []],
    ['settled', 'exited', 'missing', []],
    ['failed', 'start-failed', 'missing', []],
    ['rejected', 'refused', 'missing', []],
  ];

  it.each(cases)('a lease %s (ended: %s) whose workload is %s', (state, endReason, observed, expected) => {
    const steps: ResumeStep[] = resume({ state, endReason }, observed);
    expect(steps).toEqual(expected);
  });
});
