import { manualClock, systemClock } from '../../../src/util/clock';

describe('manual clock', () => {
  it('wakes sleepers when time reaches them, earliest first, and not before', async () => {
    const clock = manualClock(1_000);
    const woke: string[] = [];
    const late = clock.sleep(500).then(() => woke.push('late'));
    const early = clock.sleep(100).then(() => woke.push('early'));
    clock.advance(99);
    await Promise.resolve();
    expect(woke).toEqual([]);
    expect(clock.pendingSleeps).toBe(2);
    clock.advance(1_000);
    await Promise.all([late, early]);
    expect(woke).toEqual(['early', 'late']);
    expect(clock.now()).toBe(2_099);
    expect(clock.pendingSleeps).toBe(0);
  });

  it('rejects a sleep with the signal\'s reason when it aborts, and forgets it', async () => {
    const clock = manualClock();
    const controller = new AbortController();
    const sleeping = clock.sleep(1_000, controller.signal);
    controller.abort(new Error('shutdown'));
    await expect(sleeping).rejects.toThrow('shutdown');
    expect(clock.pendingSleeps).toBe(0);
    await expect(clock.sleep(1, AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
  });
});

describe('system clock', () => {
  it('sleeps in real time and can be aborted', async () => {
    const started = Date.now();
    await systemClock.sleep(20);
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    await expect(systemClock.sleep(10_000, AbortSignal.abort(new Error('stop')))).rejects.toThrow('stop');
  });
});

describe('auto-advancing manual clock', () => {
  it('runs a loop through its sleeps at once, moving time by what each slept', async () => {
    const clock = manualClock(0, { autoAdvance: true });
    for (let i = 0; i < 3; i += 1) await clock.sleep(60_000);
    expect(clock.now()).toBe(180_000);
  });
});
