import { openStore } from '../../../src/store';

const intent = (key: string) => ({ key, sender: '0x00000000000000000000000000000000000000aa', chainId: 1, to: '0x00000000000000000000000000000000000000bb', data: '0x' });

describe('OutboxRepository by key prefix', () => {
  it('finds the latest open intent of a kind and counts every one ever made', () => {
    const store = openStore(':memory:');
    const { outbox } = store;
    const first = outbox.enqueue(intent('withdraw:1'), 1);
    outbox.finish(first.id, { state: 'confirmed', txHash: '0x01', blockNumber: 1 }, 2);
    expect(outbox.openWithPrefix('withdraw:')).toBeUndefined();
    outbox.enqueue(intent('withdraw:2'), 3);
    outbox.enqueue(intent('claim:1:1'), 4);
    expect(outbox.openWithPrefix('withdraw:')).toEqual({ key: 'withdraw:2', state: 'queued' });
    expect(outbox.countWithPrefix('withdraw:')).toBe(2);
    store.close();
  });

  it('takes the prefix literally: LIKE wildcards in it match only themselves', () => {
    const store = openStore(':memory:');
    const { outbox } = store;
    outbox.enqueue(intent('withdrawX1'), 1);
    expect(outbox.openWithPrefix('withdraw_')).toBeUndefined();
    expect(outbox.countWithPrefix('with%')).toBe(0);
    expect(outbox.countWithPrefix('withdraw')).toBe(1);
    store.close();
  });
});

describe('OutboxRepository for the operator', () => {
  it('hands out failed and reverted intents oldest first, and the sender of the first intent', () => {
    const store = openStore(':memory:');
    const { outbox } = store;
    expect(outbox.firstSender()).toBeUndefined();
    const claim = outbox.enqueue(intent('claim:1:1'), 1);
    const close = outbox.enqueue(intent('close:1'), 2);
    const withdraw = outbox.enqueue(intent('withdraw:1'), 3);
    outbox.finish(withdraw.id, { state: 'failed', error: 'rejected', code: 'TX_REJECTED' }, 4);
    outbox.finish(close.id, { state: 'confirmed', txHash: '0x01', blockNumber: 1 }, 5);
    outbox.finish(claim.id, { state: 'reverted', txHash: '0x02', blockNumber: 2, error: 'NotClaimable()', code: 'TX_REVERTED' }, 6);
    expect(outbox.failed().map((e) => [e.key, e.state, e.errorCode])).toEqual([
      ['claim:1:1', 'reverted', 'TX_REVERTED'],
      ['withdraw:1', 'failed', 'TX_REJECTED'],
    ]);
    expect(outbox.firstSender()).toBe('0x00000000000000000000000000000000000000aa');
    store.close();
  });
});
