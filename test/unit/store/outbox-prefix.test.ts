import { OutboxRepository, openStore } from '../../../src/store';

describe('OutboxRepository by key prefix', () => {
  const intent = (key: string) => ({ key, sender: '0x00000000000000000000000000000000000000aa', chainId: 1, to: '0x00000000000000000000000000000000000000bb', data: '0x' });

  it('finds the latest open intent of a kind and counts every one ever made', () => {
    const db = openStore(':memory:');
    const outbox = new OutboxRepository(db);
    const first = outbox.enqueue(intent('withdraw:1'), 1);
    outbox.finish(first.id, { state: 'confirmed', txHash: '0x01', blockNumber: 1 }, 2);
    expect(outbox.openWithPrefix('withdraw:')).toBeUndefined();
    outbox.enqueue(intent('withdraw:2'), 3);
    outbox.enqueue(intent('claim:1:1'), 4);
    expect(outbox.openWithPrefix('withdraw:')).toEqual({ key: 'withdraw:2', state: 'queued' });
    expect(outbox.countWithPrefix('withdraw:')).toBe(2);
    db.close();
  });

  it('takes the prefix literally: LIKE wildcards in it match only themselves', () => {
    const db = openStore(':memory:');
    const outbox = new OutboxRepository(db);
    outbox.enqueue(intent('withdrawX1'), 1);
    expect(outbox.openWithPrefix('withdraw_')).toBeUndefined();
    expect(outbox.countWithPrefix('with%')).toBe(0);
    expect(outbox.countWithPrefix('withdraw')).toBe(1);
    db.close();
  });
});
