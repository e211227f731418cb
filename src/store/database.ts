import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ProviderError } from '../errors';

export type Db = Database.Database;

/** A schema change, applied once, in `id` order, inside a transaction. */
export interface Migration {
  id: number;
  name: string;
  up: string | ((db: Db) => void);
}

/**
 * Opens (creating if needed) the daemon's SQLite file in WAL mode: readers never block the single
 * writer, and a crash loses no committed transaction.
 */
export function openDatabase(path: string): Db {
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    // FULL: a committed outbox row or cursor must survive power loss, not just a process crash.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    cachePreparedStatements(db);
    return db;
  } catch (err) {
    throw new ProviderError('STORE_OPEN_FAILED', `cannot open the store at ${path}: ${(err as Error).message}`, {
      input: path,
      cause: err,
      fix: 'check that dataDir is writable by the daemon and the disk is not full',
    });
  }
}

/** Distinct statements kept prepared; the SQL here is a fixed set, IN lists aside. */
const PREPARED_CACHE_SIZE = 512;

/**
 * The repositories call `db.prepare(sql)` where they run it: SQLite compiles the SQL each time,
 * a cost the settlement and metering loops pay per lease per round. The same SQL gets the same
 * statement back. Safe here: no repository iterates a statement lazily or switches its mode
 * (pluck, raw), so one statement never serves two callers at once.
 */
function cachePreparedStatements(db: Db): void {
  const prepare = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      if (cache.size >= PREPARED_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      cache.set(sql, statement);
    }
    return statement;
  }) as Db['prepare'];
}

/** Applies every migration not yet recorded in `schema_migrations`, in id order. Returns the ids applied. */
export function migrate(db: Db, migrations: readonly Migration[]): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
  )`);
  const ids = migrations.map((m) => m.id);
  if (new Set(ids).size !== ids.length) throw new Error('duplicate migration ids');
  const done = new Set((db.prepare('SELECT id FROM schema_migrations').all() as { id: number }[]).map((r) => r.id));
  const applied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.id - b.id)) {
    if (done.has(migration.id)) continue;
    try {
      db.transaction(() => {
        if (typeof migration.up === 'string') db.exec(migration.up);
        else migration.up(db);
        db.prepare('INSERT INTO schema_migrations (id, name) VALUES (?, ?)').run(migration.id, migration.name);
      })();
    } catch (err) {
      throw new ProviderError('STORE_MIGRATION_FAILED', `store migration ${migration.id} (${migration.name}) failed: ${(err as Error).message}`, {
        cause: err,
        fix: 'restore the store from a backup or report the bug; the daemon does not run on a half-migrated store',
      });
    }
    applied.push(migration.id);
  }
  return applied;
}
