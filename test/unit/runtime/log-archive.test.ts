import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { isProviderError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { LogArchive, type LogArchiveSettings } from '../../../src/runtime';
import type { LogLine } from '../../../src/runtime/logs';
import { LogDigest } from '../../../src/settlement';
import { manualClock } from '../../../src/util/clock';
import { tempDir } from '../../support/cli-io';

const DAY = 86_400;

function lines(count: number, start = Date.UTC(2026, 0, 1)): LogLine[] {
  return Array.from({ length: count }, (_, i) => ({
    stream: i % 3 === 2 ? 'stderr' : 'stdout',
    time: new Date(start + i * 1000).toISOString().replace('Z', '123456Z'),
    text: `line ${i} ${'é'.repeat(i % 4)}`,
  }));
}

async function* from(items: readonly LogLine[]): AsyncGenerator<LogLine> {
  yield* items;
}

async function all(gen: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const line of gen) out.push(line);
  return out;
}

function anArchive(settings: Partial<LogArchiveSettings> = {}, now = 1_000 * DAY) {
  const dir = join(tempDir(), 'archive');
  const clock = manualClock(now * 1000);
  const archive = new LogArchive({
    dir,
    settings: () => ({ enabled: true, maxTotalBytes: 2 ** 30, maxAgeDays: 30, retentionSeconds: 7 * DAY, ...settings }),
    clock,
    log: silentLogger(),
  });
  return { archive, dir, clock };
}

describe('LogArchive', () => {
  it('gives back the lines it kept, in order, and their hash is the one the result digest takes', async () => {
    const { archive, dir } = anArchive();
    const written = lines(50);
    const entry = await archive.write('7', from(written), { keepUntil: 0, digest: new LogDigest() });
    const expected = new LogDigest();
    for (const l of written) expected.add(l.stream, l.text);
    expect(entry).toMatchObject({ leaseId: '7', lines: 50, logsSha256: expected.digest(), lost: null });
    expect(await all(archive.read('7'))).toEqual(written);
    // Compressed on disk: gzip of NDJSON.
    const raw = gunzipSync(readFileSync(join(dir, '7.ndjson.gz'))).toString('utf8');
    expect(raw.trim().split('\n')).toHaveLength(50);
  });

  it('serves tail and since as the engine does', async () => {
    const { archive } = anArchive();
    const written = lines(10);
    await archive.write('8', from(written), { keepUntil: 0, digest: new LogDigest() });
    expect(await all(archive.read('8', { tail: 3 }))).toEqual(written.slice(7));
    const since = Date.parse(written[4]!.time) / 1000;
    expect(await all(archive.read('8', { since: Math.floor(since) }))).toEqual(written.slice(4));
  });

  it('keeps the first archive of a lease: writing again does not replace it', async () => {
    const { archive } = anArchive();
    await archive.write('9', from(lines(3)), { keepUntil: 0, digest: new LogDigest() });
    const again = await archive.write('9', from(lines(5)), { keepUntil: 0, digest: new LogDigest() });
    expect(again.lines).toBe(3);
  });

  it('leaves no archive when the lines fail mid-way, and sweeps the partial file at open', async () => {
    const { archive, dir } = anArchive();
    async function* failing(): AsyncGenerator<LogLine> {
      yield* lines(2);
      throw new Error('engine went away');
    }
    await expect(archive.write('10', failing(), { keepUntil: 0, digest: new LogDigest() })).rejects.toThrow('engine went away');
    expect(archive.entry('10')).toBeUndefined();
    writeFileSync(join(dir, '10.ndjson.gz.tmp'), 'partial');
    archive.open();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('says why when the logs were lost, and when they are no longer kept', async () => {
    const { archive } = anArchive();
    archive.markLost('11', 'the container was gone before its logs were archived', 0);
    await expect(all(archive.read('11'))).rejects.toMatchObject({ code: 'LOGS_GONE', message: expect.stringContaining('the container was gone') });
    const err = await all(archive.read('12')).catch((e: unknown) => e);
    expect(isProviderError(err, 'LOGS_GONE')).toBe(true);
  });

  it('refuses a lease id that is not a number before it names a file', async () => {
    const { archive } = anArchive();
    await expect(archive.write('../etc', from(lines(1)), { keepUntil: 0, digest: new LogDigest() })).rejects.toMatchObject({ code: 'LEASE_NOT_FOUND' });
  });

  it('removes archives older than maxAgeDays once past their keep period, never before', async () => {
    const { archive, clock } = anArchive({ maxAgeDays: 1 });
    const t0 = clock.now() / 1000;
    await archive.write('1', from(lines(5)), { keepUntil: t0 + 10 * DAY, digest: new LogDigest() });
    await archive.write('2', from(lines(5)), { keepUntil: t0 + DAY, digest: new LogDigest() });
    clock.advance(2 * DAY * 1000);
    expect(archive.prune().removed).toEqual(['2']);
    expect(archive.entry('1')).toBeDefined();
    clock.advance(9 * DAY * 1000);
    expect(archive.prune().removed).toEqual(['1']);
    expect(archive.list()).toEqual([]);
  });

  it('removes the oldest past their keep period while the total is above maxTotalBytes, and keeps the protected ones whatever the total', async () => {
    const { archive, clock, dir } = anArchive({ maxTotalBytes: 1 });
    const t0 = clock.now() / 1000;
    await archive.write('1', from(lines(20)), { keepUntil: t0, digest: new LogDigest() });
    clock.advance(1000);
    await archive.write('2', from(lines(20)), { keepUntil: t0 + DAY, digest: new LogDigest() });
    clock.advance(1000);
    const outcome = archive.prune();
    expect(outcome.removed).toEqual(['1']);
    expect(outcome.overBytes).toBeGreaterThan(0);
    expect(existsSync(join(dir, '2.ndjson.gz'))).toBe(true);
  });
});
