import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { silentLogger } from '../../../src/log';
import { FrameDecoder, streamLogs } from '../../../src/runtime/logs';
import { manualClock } from '../../../src/util/clock';

function frame(kind: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = kind;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe('log frame decoder', () => {
  test('splits stdout and stderr records with their timestamps', () => {
    const d = new FrameDecoder();
    const lines = d.push(Buffer.concat([frame(1, '2026-01-01T00:00:00.123456789Z hello\n'), frame(2, '2026-01-01T00:00:01Z oops\n')]));
    expect(lines).toEqual([
      { stream: 'stdout', time: '2026-01-01T00:00:00.123456789Z', text: 'hello' },
      { stream: 'stderr', time: '2026-01-01T00:00:01Z', text: 'oops' },
    ]);
  });

  test('keeps a frame split across chunks until it is whole', () => {
    const d = new FrameDecoder();
    const whole = frame(1, '2026-01-01T00:00:00Z split line\n');
    expect(d.push(whole.subarray(0, 5))).toEqual([]);
    expect(d.push(whole.subarray(5, 20))).toEqual([]);
    expect(d.push(whole.subarray(20))).toEqual([{ stream: 'stdout', time: '2026-01-01T00:00:00Z', text: 'split line' }]);
  });
});

/** A line of a container's log file, as the engine holds it: in the order it was written. */
interface Written {
  stream: 'stdout' | 'stderr';
  time: string;
  text: string;
}

/** An RFC 3339 time in nanoseconds, exactly: the engine's times differ by less than a millisecond. */
function nanos(time: string): bigint {
  const [whole, fraction = ''] = time.replace(/Z$/, '').split('.');
  return BigInt(Date.parse(`${whole}Z`)) * 1_000_000n + BigInt(fraction.padEnd(9, '0'));
}

/** A `since=` argument ("seconds.nanoseconds") in nanoseconds. */
function sinceNanos(since: unknown): bigint {
  const [seconds, fraction = ''] = String(since).split('.');
  return BigInt(seconds!) * 1_000_000_000n + BigInt(fraction.padEnd(9, '0'));
}

/**
 * An engine serving one container's log file as Docker's json-file reader does: `since` is
 * inclusive and filters by time, the answer keeps the file's order. Each answer is cut after the
 * number of lines `cuts` gives it (the engine closing the stream), the last runs to the end.
 */
function logFileEngine(file: Written[], cuts: number[]): { docker: Docker; queries: Record<string, unknown>[] } {
  const queries: Record<string, unknown>[] = [];
  let answered = 0;
  const docker = {
    getContainer: () => ({
      logs: async (q: Record<string, unknown>) => {
        queries.push(q);
        const lines = q.since === undefined ? file : file.filter((l) => nanos(l.time) >= sinceNanos(q.since));
        const cut = cuts[answered] ?? lines.length;
        answered += 1;
        const frames = lines.slice(0, cut).map((l) => frame(l.stream === 'stderr' ? 2 : 1, `${l.time} ${l.text}\n`));
        return q.follow === true ? Readable.from(frames) : Buffer.concat(frames);
      },
      // Running while cuts remain, so a follow resumes after each.
      inspect: async () => ({ State: { Running: answered <= cuts.length, Restarting: false } }),
    }),
  } as unknown as Docker;
  return { docker, queries };
}

async function read(docker: Docker, options: { follow?: boolean; since?: number }): Promise<Written[]> {
  const out: Written[] = [];
  const context = { log: silentLogger(), clock: manualClock(0, { autoAdvance: true }), requestTimeoutMs: 1_000 };
  for await (const line of streamLogs(docker, 'c1', options, context)) out.push(line);
  return out;
}

/** The engine stamped the complaint on stderr before "third", but wrote it to the file after. */
const interleaved: Written[] = [
  { stream: 'stdout', time: '2026-12-04T15:12:45.557450410Z', text: 'first line' },
  { stream: 'stdout', time: '2026-12-04T15:12:45.557520434Z', text: 'second line' },
  { stream: 'stdout', time: '2026-12-04T15:12:45.557523469Z', text: 'third line' },
  { stream: 'stderr', time: '2026-12-04T15:12:45.557479794Z', text: 'a complaint' },
  { stream: 'stdout', time: '2026-12-04T15:12:46.100000000Z', text: 'fourth line' },
  { stream: 'stderr', time: '2026-12-04T15:12:46.100000000Z', text: 'same time' },
  { stream: 'stdout', time: '2026-12-04T15:12:46.100000000Z', text: 'same time again' },
  { stream: 'stderr', time: '2026-12-04T15:12:47.000000000Z', text: 'last words' },
];

describe('log stream order', () => {
  test('gives every line of a log whose stderr line was stamped before a stdout line written ahead of it', async () => {
    // The file as a real engine wrote it under load (the contract test caught it dropping the stderr line).
    const { docker } = logFileEngine(interleaved.slice(0, 4), []);
    expect(await read(docker, {})).toEqual(interleaved.slice(0, 4));
  });

  test('a follow the engine closes after any line, once or twice, resumes with each line once, none lost', async () => {
    for (let a = 1; a < interleaved.length; a += 1) {
      for (let b = 0; b < interleaved.length; b += 1) {
        const { docker, queries } = logFileEngine(interleaved, [a, b]);
        const seen = await read(docker, { follow: true });
        expect({ cuts: [a, b], seen: seen.map((l) => l.text) }).toEqual({ cuts: [a, b], seen: interleaved.map((l) => l.text) });
        expect(queries[0]).not.toHaveProperty('since');
      }
    }
  });

  test('a resume starts no later than the oldest line not yet given, and not far before the newest', async () => {
    // Cut after "third line": the stderr line stamped before it is still to come.
    const { docker, queries } = logFileEngine(interleaved, [3]);
    await read(docker, { follow: true });
    const since = sinceNanos(queries[1]?.since);
    expect(since <= nanos('2026-12-04T15:12:45.557479794Z')).toBe(true);
    expect(since >= nanos('2026-12-04T15:12:45.557523469Z') - 2_000_000_000n).toBe(true);
  });

  test("a resume does not reach back before the caller's since", async () => {
    // Asked from 15:12:45.5575 on, cut after its first line ("second line"): the overlap would
    // reach 2 s back, to "a complaint", stamped before the since.
    const since = nanos('2026-12-04T15:12:45.557500000Z');
    const { docker, queries } = logFileEngine(interleaved, [1]);
    const seen = await read(docker, { follow: true, since: Number(since) / 1e9 });
    expect(seen.map((l) => l.text)).toEqual(interleaved.filter((l) => nanos(l.time) >= since).map((l) => l.text));
    expect(sinceNanos(queries[1]?.since) >= since - 1_000n).toBe(true);
  });
});
