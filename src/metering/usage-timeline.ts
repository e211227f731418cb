import type { CounterSample } from './container-counters';

/** One interval of a lease's usage, in the units of the on-chain usage record (before pricing). */
export interface UsageInterval {
  seq: number;
  /** Unix seconds; an interval starts where the previous one ended. */
  t0: number;
  t1: number;
  cpuMillis: bigint;
  memoryByteSeconds: bigint;
  gpuMillis: bigint;
  rxBytes: bigint;
  txBytes: bigint;
}

/** The counters that matter between samples; cumulative, as the kernel reports them. */
export type CumulativeCounters = Pick<CounterSample, 'cpuNanos' | 'memoryBytes' | 'rxBytes' | 'txBytes'>;

/** Everything needed to continue a timeline after a restart; stored with each interval. */
export interface TimelineState {
  nextSeq: number;
  /** End of the last interval: the next one starts here. */
  boundary: number;
  /** Counters at the boundary; undefined before the first sample (the container starts at zero). */
  counters: CumulativeCounters | undefined;
  gpuCount: number;
}

const NANOS_PER_MILLI = 1_000_000n;

/**
 * Turns cumulative counter samples into contiguous usage intervals: each interval starts at the
 * previous one's end, so a lease's timeline has no hole and no overlap, across restarts too
 * (resume from the stored state). Counters that go backwards mean the container's processes
 * were recreated; the new values are counted from zero.
 */
export class UsageTimeline {
  private current: TimelineState;

  constructor(state: TimelineState) {
    this.current = { ...state };
  }

  static start(startedAt: number, gpuCount: number): UsageTimeline {
    return new UsageTimeline({ nextSeq: 0, boundary: startedAt, counters: undefined, gpuCount });
  }

  state(): TimelineState {
    return { ...this.current };
  }

  /**
   * Closes the interval up to `at` with the counters read then. A sample within the current
   * second yields nothing: its counters are counted by the next interval instead.
   */
  sample(at: number, counters: CumulativeCounters): UsageInterval | undefined {
    if (at <= this.current.boundary) return undefined;
    const previous = this.current.counters;
    const interval: UsageInterval = {
      seq: this.current.nextSeq,
      t0: this.current.boundary,
      t1: at,
      cpuMillis: millisDelta(previous?.cpuNanos, counters.cpuNanos),
      memoryByteSeconds: memoryIntegral(previous?.memoryBytes ?? counters.memoryBytes, counters.memoryBytes, at - this.current.boundary),
      gpuMillis: BigInt(this.current.gpuCount) * BigInt(at - this.current.boundary) * 1000n,
      rxBytes: delta(previous?.rxBytes, counters.rxBytes),
      txBytes: delta(previous?.txBytes, counters.txBytes),
    };
    this.current = { ...this.current, nextSeq: this.current.nextSeq + 1, boundary: at, counters: { ...counters } };
    return interval;
  }

  /**
   * The last interval of a lease whose workload has ended, to `at`. With `final`, the counters as
   * they stood at its end, its CPU and traffic after the last sample are billed; without (the
   * backend kept none) only time-based use runs to `at`. Memory is the memory held at the last
   * sample either way: the workload holds none once ended, and nothing tells when it let go.
   */
  finish(at: number, final?: CumulativeCounters): UsageInterval | undefined {
    const last = this.current.counters;
    const held = last?.memoryBytes ?? final?.memoryBytes ?? 0;
    return this.sample(at, { ...(final ?? last ?? { cpuNanos: 0n, rxBytes: 0n, txBytes: 0n }), memoryBytes: held });
  }

  /** Whether `counters` hold CPU time or traffic the records so far have not billed. */
  unbilled(counters: CumulativeCounters): boolean {
    const last = this.current.counters;
    if (!last) return counters.cpuNanos / NANOS_PER_MILLI > 0n || counters.rxBytes > 0n || counters.txBytes > 0n;
    return millisDelta(last.cpuNanos, counters.cpuNanos) > 0n || delta(last.rxBytes, counters.rxBytes) > 0n || delta(last.txBytes, counters.txBytes) > 0n;
  }
}

function delta(previous: bigint | undefined, current: bigint): bigint {
  if (previous === undefined || current < previous) return current;
  return current - previous;
}

function millisDelta(previous: bigint | undefined, current: bigint): bigint {
  // Whole milliseconds of the cumulative totals, so rounding never drifts across intervals.
  const now = current / NANOS_PER_MILLI;
  if (previous === undefined || current < previous) return now;
  return now - previous / NANOS_PER_MILLI;
}

function memoryIntegral(fromBytes: number, toBytes: number, seconds: number): bigint {
  // Trapezoid between two samples: the kernel gives instants, the record wants byte-seconds.
  return (BigInt(Math.round(fromBytes)) + BigInt(Math.round(toBytes))) * BigInt(seconds) / 2n;
}
