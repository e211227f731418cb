import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { z } from 'zod';
import type { ProviderConfig } from '../config';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { LogLine } from './logs';

/**
 * A lease's logs kept after its container is removed: one gzip file of NDJSON lines per lease,
 * written once, in the engine's order, beside a small JSON entry written last (an entry means a
 * whole archive; a crash mid-write leaves only a temporary file, swept at start). Bounded by
 * `logArchive`: total size and age, but never before an archive's `keepUntil` (the marketplace's
 * challenge window after settlement plus a retention): a tenant's evidence outlives the disputes.
 */

export type LogArchiveSettings = ProviderConfig['logArchive'];

const entrySchema = z.object({
  leaseId: z.string().regex(/^\d{1,78}$/),
  /** Unix seconds it was written. */
  archivedAt: z.number().int(),
  /** Not deleted before this (unix seconds), whatever the bounds. */
  keepUntil: z.number().int(),
  /** Compressed size on disk. */
  bytes: z.number().int().nonnegative(),
  lines: z.number().int().nonnegative(),
  /** SHA-256 of the lines in the result digest's encoding, as archived. */
  logsSha256: z.string().nullable(),
  /** Why there is no log to keep (the container was gone before it was archived); null for a whole archive. */
  lost: z.string().nullable(),
});

export type ArchiveEntry = z.infer<typeof entrySchema>;

const lineSchema = z.object({ stream: z.enum(['stdout', 'stderr']), time: z.string(), text: z.string() });

/** What the archive computes over the lines it writes (the result digest's log hash). */
export interface LineDigest {
  add(stream: 'stdout' | 'stderr', text: string): void;
  digest(): string;
}

export interface ArchiveReadOptions {
  tail?: number;
  /** Only lines at or after this time (unix seconds, may be fractional). */
  since?: number;
  signal?: AbortSignal;
}

export interface LogArchiveDeps {
  /** This store's archive folder (logArchiveDirFor). */
  dir: string;
  settings: () => LogArchiveSettings;
  clock: Clock;
  log: Logger;
}

/** Lease ids are per marketplace: one archive folder per store, as the store's own file is. */
export function logArchiveDirFor(dataDir: string, chainId: number, marketplaceAddress: string): string {
  return join(dataDir, `log-archive-${chainId}-${marketplaceAddress.slice(2, 10).toLowerCase()}`);
}

export class LogArchive {
  constructor(private readonly deps: LogArchiveDeps) {}

  get enabled(): boolean {
    return this.deps.settings().enabled;
  }

  /** When an archive of a lease settled at `settledAt` may go at the earliest: after the challenge window and the retention. */
  keepUntil(settledAt: number, challengeWindowSeconds: number): number {
    return settledAt + challengeWindowSeconds + this.deps.settings().retentionSeconds;
  }

  /** Creates the folder and sweeps what a crash mid-write left. */
  open(): void {
    mkdirSync(this.deps.dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(this.deps.dir)) {
      if (name.endsWith('.tmp')) rmSync(join(this.deps.dir, name), { force: true });
    }
  }

  entry(leaseId: string): ArchiveEntry | undefined {
    const file = this.entryPath(leaseId);
    if (!existsSync(file)) return undefined;
    try {
      return entrySchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    } catch (err) {
      this.deps.log.warn({ leaseId, file, err: describeError(err) }, 'unreadable log archive entry; ignoring it');
      return undefined;
    }
  }

  /** Writes the lease's lines to its archive (idempotent: an existing archive is kept as it is). */
  async write(leaseId: string, lines: AsyncIterable<LogLine>, options: { keepUntil: number; digest: LineDigest; signal?: AbortSignal }): Promise<ArchiveEntry> {
    const existing = this.entry(leaseId);
    if (existing) return existing;
    this.open();
    const data = this.dataPath(leaseId);
    const temp = `${data}.tmp`;
    let count = 0;
    const digest = options.digest;
    async function* encode(): AsyncGenerator<string> {
      for await (const line of lines) {
        digest.add(line.stream, line.text);
        count += 1;
        yield `${JSON.stringify({ stream: line.stream, time: line.time, text: line.text })}\n`;
      }
    }
    try {
      await pipeline(Readable.from(encode()), createGzip(), createWriteStream(temp, { mode: 0o600 }), options.signal ? { signal: options.signal } : {});
      renameSync(temp, data);
    } catch (err) {
      rmSync(temp, { force: true });
      throw err;
    }
    const entry: ArchiveEntry = {
      leaseId,
      archivedAt: this.now(),
      keepUntil: options.keepUntil,
      bytes: statSync(data).size,
      lines: count,
      logsSha256: digest.digest(),
      lost: null,
    };
    this.writeEntry(entry);
    return entry;
  }

  /** Records that a lease's logs could not be kept, and why: the log route says so instead of an empty log. */
  markLost(leaseId: string, reason: string, keepUntil: number): ArchiveEntry {
    this.open();
    const entry: ArchiveEntry = { leaseId, archivedAt: this.now(), keepUntil, bytes: 0, lines: 0, logsSha256: null, lost: reason };
    this.writeEntry(entry);
    return entry;
  }

  /** The archived lines, in the order they were written; LOGS_GONE when the lease has no archive (or lost it). */
  async *read(leaseId: string, options: ArchiveReadOptions = {}): AsyncGenerator<LogLine> {
    const entry = this.entry(leaseId);
    if (!entry || !existsSync(this.dataPath(leaseId))) {
      throw new ProviderError('LOGS_GONE', entry?.lost ? `the logs of lease ${leaseId} were not kept: ${entry.lost}` : `the logs of lease ${leaseId} are no longer kept`, {
        input: leaseId,
        fix: 'logs are kept after a lease settles only up to the provider\'s logArchive bounds; read them while the lease runs or soon after it settles',
      });
    }
    const since = options.since === undefined ? undefined : options.since * 1000;
    const tail = options.tail;
    const kept: LogLine[] = [];
    const input = createReadStream(this.dataPath(leaseId)).pipe(createGunzip());
    const reader = createInterface({ input, crlfDelay: Infinity });
    const onAbort = (): void => {
      input.destroy();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const raw of reader) {
        if (options.signal?.aborted) return;
        if (raw === '') continue;
        const line = lineSchema.parse(JSON.parse(raw));
        if (since !== undefined && !(Date.parse(line.time) >= since)) continue;
        if (tail === undefined) {
          yield line;
          continue;
        }
        kept.push(line);
        if (kept.length > tail) kept.shift();
      }
      yield* kept;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      reader.close();
      input.destroy();
    }
  }

  /**
   * Applies the bounds: archives past their keep period go when older than maxAgeDays, then the
   * oldest of them while the total is above maxTotalBytes. Returns what went, and the bytes above
   * the bound that are still in their keep period (kept: said in the log).
   */
  prune(): { removed: string[]; overBytes: number } {
    if (!existsSync(this.deps.dir)) return { removed: [], overBytes: 0 };
    const settings = this.deps.settings();
    const now = this.now();
    const entries = this.list().sort((a, b) => a.archivedAt - b.archivedAt || a.leaseId.localeCompare(b.leaseId));
    const removed: string[] = [];
    let total = entries.reduce((sum, e) => sum + e.bytes, 0);
    const maxAge = settings.maxAgeDays * 86_400;
    for (const entry of entries) {
      if (now < entry.keepUntil) continue;
      if (now - entry.archivedAt > maxAge || total > settings.maxTotalBytes) {
        this.remove(entry.leaseId);
        removed.push(entry.leaseId);
        total -= entry.bytes;
      }
    }
    const overBytes = Math.max(0, total - settings.maxTotalBytes);
    if (removed.length > 0) this.deps.log.info({ removed: removed.length }, 'log archives past their bounds removed');
    if (overBytes > 0) this.deps.log.warn({ overBytes, maxTotalBytes: settings.maxTotalBytes }, 'log archives are above logArchive.maxTotalBytes, but still within their keep period: kept');
    return { removed, overBytes };
  }

  list(): ArchiveEntry[] {
    if (!existsSync(this.deps.dir)) return [];
    const out: ArchiveEntry[] = [];
    for (const name of readdirSync(this.deps.dir)) {
      const m = /^(\d{1,78})\.json$/.exec(name);
      const entry = m?.[1] ? this.entry(m[1]) : undefined;
      if (entry) out.push(entry);
    }
    return out;
  }

  private remove(leaseId: string): void {
    // The entry first: without it, what is left of the data is swept as unreadable, never served half.
    rmSync(this.entryPath(leaseId), { force: true });
    rmSync(this.dataPath(leaseId), { force: true });
  }

  private writeEntry(entry: ArchiveEntry): void {
    const file = this.entryPath(entry.leaseId);
    writeFileSync(`${file}.tmp`, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  private now(): number {
    return Math.floor(this.deps.clock.now() / 1000);
  }

  private dataPath(leaseId: string): string {
    return join(this.deps.dir, `${checkedId(leaseId)}.ndjson.gz`);
  }

  private entryPath(leaseId: string): string {
    return join(this.deps.dir, `${checkedId(leaseId)}.json`);
  }
}

/** Lease ids name files here: only decimal digits ever reach a path. */
function checkedId(leaseId: string): string {
  if (!/^\d{1,78}$/.test(leaseId)) throw new ProviderError('LEASE_NOT_FOUND', `no lease ${leaseId.slice(0, 80)}`, { input: leaseId.slice(0, 80) });
  return leaseId;
}
