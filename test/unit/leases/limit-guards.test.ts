import { limitBreach } from '../../../src/leases/limit-guards';

describe('limit guards', () => {
  const lease = { openedAt: 1_000, maxDuration: 60, deposit: 500n };

  it('lets a lease within its time and deposit run', () => {
    expect(limitBreach(lease, 499n, 1_059)).toBeUndefined();
  });

  it('ends a lease at its maxDuration', () => {
    expect(limitBreach(lease, 0n, 1_060)).toEqual({ reason: 'max-duration', detail: 'maxDuration of 60s reached' });
  });

  it('ends a lease whose usage reached its deposit', () => {
    expect(limitBreach(lease, 500n, 1_010)).toEqual({ reason: 'escrow-exhausted', detail: 'usage 500 reached the deposit 500' });
  });

  it('names the time limit first when both are reached', () => {
    expect(limitBreach(lease, 900n, 2_000)?.reason).toBe('max-duration');
  });
});
