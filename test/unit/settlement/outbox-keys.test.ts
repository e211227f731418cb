import { claimKey, closeKey, finalizeKey, isPaymentKey, parseSettlementKey, redeemKey, settleKey, withdrawKey } from '../../../src/settlement';

describe('settlement outbox keys', () => {
  it('reads back every key it builds as the step it names', () => {
    expect(parseSettlementKey(redeemKey(12n, 5n))).toEqual({ kind: 'redeem', leaseId: 12n, seq: 5n });
    expect(parseSettlementKey(claimKey('12', 5))).toEqual({ kind: 'claim', leaseId: 12n, seq: 5n });
    expect(parseSettlementKey(finalizeKey(12n, 6n))).toEqual({ kind: 'finalize', leaseId: 12n, seq: 6n });
    expect(parseSettlementKey(closeKey(12n))).toEqual({ kind: 'close', leaseId: 12n });
    expect(parseSettlementKey(settleKey('12'))).toEqual({ kind: 'settle', leaseId: 12n });
    expect(parseSettlementKey(withdrawKey(3))).toEqual({ kind: 'withdraw', number: 3 });
  });

  it('keeps the key strings the outbox already holds', () => {
    expect([claimKey(1n, 2n), redeemKey(1n, 2n), finalizeKey(1n, 2n), closeKey(1n), settleKey(1n), withdrawKey(1)]).toEqual([
      'claim:1:2',
      'redeem:1:2',
      'finalize:1:2',
      'close:1',
      'settle:1',
      'withdraw:1',
    ]);
  });

  it('does not take keys it did not build: registration\'s, or a step with the wrong parts', () => {
    for (const key of ['register:abc', 'update:1', 'approve-bond:abc', 'claim:1', 'close:1:2', 'withdraw:1:2', 'claim:x:1']) {
      expect([key, parseSettlementKey(key)]).toEqual([key, undefined]);
    }
  });

  it('counts claims, redeems and withdrawals as payments, not the other steps', () => {
    expect([claimKey(1n, 1n), redeemKey(1n, 1n), withdrawKey(1)].every(isPaymentKey)).toBe(true);
    expect([closeKey(1n), settleKey(1n), finalizeKey(1n, 1n), 'update:1'].some(isPaymentKey)).toBe(false);
  });
});
