/**
 * A time in nanoseconds as the engine's `since=` takes it ("seconds.nanoseconds"): the log and
 * event streams resume from one, and a float would lose the nanoseconds that order their lines.
 */
export function engineSince(nanos: bigint): string {
  const seconds = nanos / 1_000_000_000n;
  const rest = nanos % 1_000_000_000n;
  return `${seconds}.${rest.toString().padStart(9, '0')}`;
}
