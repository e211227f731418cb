import type Docker from 'dockerode';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { boundedCall, slowCallTimeout, type CallBounds } from './bounded-call';
import { isEngineGone, isEngineNotFound } from './docker-errors';
import { engineSince } from './engine-since';
import { inspectLease } from './lease-containers';
import { containerName } from './names';

export interface LogLine {
  stream: 'stdout' | 'stderr';
  /** RFC 3339 with nanoseconds, as the engine stamped the line. */
  time: string;
  text: string;
}

export interface LogOptions {
  follow?: boolean;
  /** Lines from the end to start with; all when left out. */
  tail?: number;
  /** Only lines at or after this time (unix seconds, may be fractional). */
  since?: number;
  signal?: AbortSignal;
  /** Longest wait for the engine to come back before a follow gives up. */
  reconnectTimeoutMs?: number;
}

/** What a log reader needs besides the engine: engine requests are bounded by `requestTimeoutMs`. */
export interface LogReaderContext {
  log: Logger;
  clock: Clock;
  requestTimeoutMs: number;
}

/** A log record's time as [seconds, nanoseconds], for ordering and for `since=`. */
function timeKey(time: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(time);
  if (!m) return undefined;
  const seconds = BigInt(Math.floor(Date.parse(`${m[1]}Z`) / 1000));
  const nanos = BigInt((m[2] ?? '').padEnd(9, '0'));
  return seconds * 1_000_000_000n + nanos;
}

/**
 * Splits the engine's multiplexed stdout/stderr stream (8-byte frame headers) into records; each
 * record is one log message "<timestamp> <text>". Keeps a partial frame for the next chunk.
 */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): LogLine[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: LogLine[] = [];
    while (this.buffer.length >= 8) {
      const size = this.buffer.readUInt32BE(4);
      if (this.buffer.length < 8 + size) break;
      const kind = this.buffer[0];
      const payload = this.buffer.subarray(8, 8 + size).toString('utf8');
      this.buffer = this.buffer.subarray(8 + size);
      const space = payload.indexOf(' ');
      const time = space > 0 ? payload.slice(0, space) : '';
      const text = (space > 0 ? payload.slice(space + 1) : payload).replace(/\n$/, '');
      out.push({ stream: kind === 2 ? 'stderr' : 'stdout', time, text });
    }
    return out;
  }
}

/**
 * How far before the newest line a resumed stream asks the engine to start again. The engine stamps
 * stdout and stderr in a goroutine each and writes them to the log as each gets the lock, so a line
 * can land after one stamped later than it (measured: microseconds apart; 2 s is for a loaded host).
 */
const RESUME_OVERLAP_NS = 2_000_000_000n;

/** Where one stream (stdout or stderr) got to: its newest line's time, and how many lines had it. */
interface StreamMark {
  key: bigint;
  count: number;
}

type StreamMarks = Partial<Record<LogLine['stream'], StreamMark>>;

/**
 * What a stream has given, per output stream: within one of them the engine's times only go up,
 * so a line of that stream at or before its mark has been given. Across them they do not, which
 * is why this is kept per stream and a resume starts early enough for both.
 */
class GivenLines {
  private readonly marks: StreamMarks = {};

  given(line: LogLine, key: bigint): void {
    const mark = this.marks[line.stream];
    if (mark !== undefined && mark.key === key) mark.count += 1;
    else this.marks[line.stream] = { key, count: 1 };
  }

  /**
   * The `since` for a resumed stream: no line not yet given is older, and none before `notBefore`
   * (the caller's own since) is asked for. Undefined before any line.
   */
  resumeFrom(notBefore: bigint | undefined): bigint | undefined {
    const marks = Object.values(this.marks);
    if (marks.length === 0) return undefined;
    const newest = marks.reduce((n, m) => (m.key > n ? m.key : n), marks[0]!.key);
    let floor = newest - RESUME_OVERLAP_NS;
    if (notBefore !== undefined && notBefore > floor) floor = notBefore;
    // A stream with no line yet may have one stamped a little before the other's newest.
    const from = (['stdout', 'stderr'] as const).map((s) => {
      const key = this.marks[s]?.key;
      return key !== undefined && key > floor ? key : floor;
    });
    return from.reduce((a, b) => (b < a ? b : a));
  }

  /** Decides, for a resumed stream, whether each line was given before it began. */
  replayFilter(): (line: LogLine, key: bigint) => boolean {
    const before: StreamMarks = {};
    for (const [stream, mark] of Object.entries(this.marks) as [LogLine['stream'], StreamMark][]) before[stream] = { ...mark };
    return (line, key) => {
      const mark = before[line.stream];
      if (mark === undefined || key > mark.key) return false;
      if (key < mark.key) return true;
      if (mark.count === 0) return false;
      mark.count -= 1;
      return true;
    };
  }
}

/**
 * A container's logs as lines, in the engine's order. With `follow`, the stream outlives the
 * engine closing it (an engine restart, a dropped socket): it reconnects with `since` a little
 * before the last line seen and skips the lines it already gave, until the container stops or the
 * signal aborts.
 */
export async function* streamLogs(docker: Docker, containerId: string, options: LogOptions, context: LogReaderContext): AsyncGenerator<LogLine> {
  const { log, clock, requestTimeoutMs } = context;
  // A whole log (no follow) is read in one answer: up to runtime.logMaxSize × logMaxFiles.
  const readBounds = { signal: options.signal, timeoutMs: slowCallTimeout(requestTimeoutMs) };
  const follow = options.follow === true;
  const signal = options.signal;
  const given = new GivenLines();
  const sinceKey = options.since === undefined ? undefined : BigInt(Math.round(options.since * 1e9));
  let first = true;
  let gaveUpAt: number | undefined;
  while (!signal?.aborted) {
    const query: Record<string, unknown> = { stdout: true, stderr: true, timestamps: true, follow };
    if (first && options.tail !== undefined) query.tail = options.tail;
    const resumeFrom = first ? undefined : given.resumeFrom(sinceKey);
    if (resumeFrom !== undefined) query.since = engineSince(resumeFrom);
    else if (options.since !== undefined) query.since = options.since;
    const givenBefore = first ? () => false : given.replayFilter();
    try {
      const container = docker.getContainer(containerId);
      const result = (await boundedCall(`reading the logs of ${containerId}`, readBounds, (abortSignal) =>
        container.logs({ ...query, abortSignal } as unknown as Docker.ContainerLogsOptions & { follow: true }),
      )) as unknown;
      gaveUpAt = undefined;
      const decoder = new FrameDecoder();
      const chunks: Iterable<Buffer> | AsyncIterable<Buffer> = Buffer.isBuffer(result) ? [result] : (result as AsyncIterable<Buffer>);
      for await (const chunk of chunks) {
        for (const line of decoder.push(chunk)) {
          const key = timeKey(line.time);
          if (key !== undefined) {
            if (givenBefore(line, key)) continue;
            given.given(line, key);
          }
          yield line;
        }
      }
      first = false;
      if (!follow || signal?.aborted) return;
      // The stream ended: the container stopped (done), or the engine closed it (resume).
      const state = await inspectState(docker, containerId, { signal, timeoutMs: requestTimeoutMs });
      if (state === 'gone' || state === 'stopped') return;
    } catch (err) {
      if (signal?.aborted) return;
      if (isEngineNotFound(err)) return;
      if (!follow) throw err;
      if (!isEngineGone(err)) log.debug({ containerId, err: (err as Error).message }, 'log stream failed; resuming');
      first = false;
    }
    // The engine is away or closed the stream: wait a little and resume from the last line.
    gaveUpAt ??= clock.now() + (options.reconnectTimeoutMs ?? 120_000);
    if (clock.now() > gaveUpAt) {
      log.warn({ containerId }, 'log stream: engine did not come back; giving up');
      return;
    }
    await clock.sleep(250, signal).catch(() => undefined);
  }
}

async function inspectState(docker: Docker, containerId: string, bounds: CallBounds): Promise<'running' | 'stopped' | 'gone' | 'unknown'> {
  try {
    const info = await boundedCall(`inspecting ${containerId}`, bounds, (abortSignal) => docker.getContainer(containerId).inspect({ abortSignal }));
    return info.State.Running || info.State.Restarting ? 'running' : 'stopped';
  } catch (err) {
    if (isEngineNotFound(err)) return 'gone';
    return 'unknown';
  }
}

/**
 * A lease's log lines, read from Docker: what a reader without a whole runtime (the `logs`
 * command with the daemon down, the Docker backend) needs. Fails CONTAINER_NOT_FOUND for a lease
 * without a container, where the engine's stream would just be empty.
 */
export async function* leaseLogs(docker: Docker, leaseId: string, options: LogOptions, context: LogReaderContext): AsyncGenerator<LogLine> {
  await inspectLease(docker, leaseId, { signal: options.signal, timeoutMs: context.requestTimeoutMs });
  yield* streamLogs(docker, containerName(leaseId), options, { ...context, log: context.log.child({ leaseId }) });
}
