import { Backoff, Wakeup, sleep } from '../../../src/chain/backoff';

describe('Backoff', () => {
  it('doubles up to the ceiling, jittered into the upper half, and resets', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1_000 }, () => 1);
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.next())).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    backoff.reset();
    expect(new Backoff({ initialMs: 100, maxMs: 1_000 }, () => 0).next()).toBe(50);
    expect(backoff.next()).toBe(100);
  });
});

describe('Wakeup', () => {
  it('returns early when woken, and remembers a wake that came before the wait', async () => {
    const wakeup = new Wakeup();
    const started = Date.now();
    setTimeout(() => wakeup.wake(), 20);
    await wakeup.wait(5_000);
    wakeup.wake();
    await wakeup.wait(5_000);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('stops waiting when its signal aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutdown')), 20);
    await expect(new Wakeup().wait(5_000, controller.signal)).rejects.toThrow('shutdown');
    await expect(sleep(5_000, AbortSignal.abort(new Error('now')))).rejects.toThrow('now');
  });
});
