import { UsageTimeline, type CumulativeCounters } from '../../../src/metering';

const counters = (cpuMs: number, memoryBytes: number, rx: number, tx: number): CumulativeCounters => ({
  cpuNanos: BigInt(cpuMs) * 1_000_000n + 123n,
  memoryBytes,
  rxBytes: BigInt(rx),
  txBytes: BigInt(tx),
});

describe('UsageTimeline', () => {
  it('turns cumulative samples into contiguous intervals of deltas', () => {
    const timeline = UsageTimeline.start(1000, 2);
    const first = timeline.sample(1010, counters(4000, 100, 10, 20));
    const second = timeline.sample(1025, counters(10000, 300, 15, 120));
    expect(first).toEqual({ seq: 0, t0: 1000, t1: 1010, cpuMillis: 4000n, memoryByteSeconds: 1000n, gpuMillis: 20000n, rxBytes: 10n, txBytes: 20n });
    expect(second).toEqual({ seq: 1, t0: 1010, t1: 1025, cpuMillis: 6000n, memoryByteSeconds: 3000n, gpuMillis: 30000n, rxBytes: 5n, txBytes: 100n });
  });

  it('yields nothing within the same second and counts those counters in the next interval', () => {
    const timeline = UsageTimeline.start(1000, 0);
    timeline.sample(1001, counters(10, 0, 0, 0));
    expect(timeline.sample(1001, counters(50, 0, 0, 0))).toBeUndefined();
    expect(timeline.sample(1002, counters(70, 0, 0, 0))).toMatchObject({ seq: 1, t0: 1001, t1: 1002, cpuMillis: 60n });
  });

  it('counts from zero when the counters go backwards (the processes were recreated)', () => {
    const timeline = UsageTimeline.start(0, 0);
    timeline.sample(10, counters(5000, 0, 900, 900));
    expect(timeline.sample(20, counters(300, 0, 40, 50))).toMatchObject({ cpuMillis: 300n, rxBytes: 40n, txBytes: 50n });
  });

  it('never drifts when CPU time is not a whole number of milliseconds', () => {
    const timeline = UsageTimeline.start(0, 0);
    let billed = 0n;
    for (let t = 1; t <= 100; t += 1) billed += timeline.sample(t, { cpuNanos: BigInt(t) * 1_700_000n, memoryBytes: 0, rxBytes: 0n, txBytes: 0n })?.cpuMillis ?? 0n;
    expect(billed).toBe(170n);
  });

  it('resumes from stored state after a restart with no hole and no overlap', () => {
    const before = UsageTimeline.start(100, 1);
    before.sample(110, counters(1000, 64, 1, 1));
    const stored = JSON.parse(JSON.stringify(before.state(), (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)), (_k, v: unknown) =>
      typeof v === 'string' && /^\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v,
    ) as ReturnType<UsageTimeline['state']>;
    const after = new UsageTimeline(stored);
    expect(after.sample(130, counters(3000, 64, 2, 2))).toEqual({
      seq: 1, t0: 110, t1: 130, cpuMillis: 2000n, memoryByteSeconds: 1280n, gpuMillis: 20000n, rxBytes: 1n, txBytes: 1n,
    });
  });

  it('finishes a lease whose container ended with time-based use only', () => {
    const timeline = UsageTimeline.start(0, 1);
    timeline.sample(10, counters(500, 1000, 5, 5));
    expect(timeline.finish(14)).toEqual({ seq: 1, t0: 10, t1: 14, cpuMillis: 0n, memoryByteSeconds: 4000n, gpuMillis: 4000n, rxBytes: 0n, txBytes: 0n });
    expect(timeline.finish(14)).toBeUndefined();
  });

  it('finishes with the counters at the workload\'s end: CPU and traffic after the last sample billed, memory as last held', () => {
    const timeline = UsageTimeline.start(0, 0);
    timeline.sample(10, counters(500, 1000, 5, 5));
    const final = { ...counters(1700, 0, 9, 4005), memoryBytes: 0 };
    expect(timeline.unbilled(final)).toBe(true);
    expect(timeline.finish(12, final)).toEqual({ seq: 1, t0: 10, t1: 12, cpuMillis: 1200n, memoryByteSeconds: 2000n, gpuMillis: 0n, rxBytes: 4n, txBytes: 4000n });
    expect(timeline.unbilled(final)).toBe(false);
  });

  it('finishes a lease never sampled with the counters at its end', () => {
    const timeline = UsageTimeline.start(0, 0);
    expect(timeline.unbilled(counters(0, 0, 0, 0))).toBe(false);
    expect(timeline.finish(1, counters(900, 0, 1, 2))).toMatchObject({ t0: 0, t1: 1, cpuMillis: 900n, rxBytes: 1n, txBytes: 2n });
  });
});
