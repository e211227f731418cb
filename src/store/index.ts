import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ProviderError } from '../errors';
import { openDatabase, migrate, type Db } from './database';
import { MIGRATIONS } from './migrations';

export { openDatabase, migrate, type Db, type Migration } from './database';
export { MIGRATIONS } from './migrations';
export { OutboxRepository, type OutboxEntry, type OutboxAttempt, type OutboxState, type NewIntent } from './outbox-repository';
export { CursorRepository, type BlockCursor } from './cursor-repository';

/**
 * The store's file: one per chain and marketplace, so a new devnet never meets old leases.
 * Commands that read the store while the daemon is down find it through this too.
 */
export function storePathFor(dataDir: string, chainId: number, marketplaceAddress: string): string {
  return join(dataDir, `store-${chainId}-${marketplaceAddress.slice(2, 10).toLowerCase()}.sqlite`);
}

/** Opens the store file and brings its schema up to date. */
export function openStore(path: string): Db {
  const db = openDatabase(path);
  try {
    migrate(db, MIGRATIONS);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}
export {
  LeaseStore,
  SqliteNonceLedger,
  toJson,
  fromJson,
  type StoredQuote,
  type StoredQuoteBody,
  type StoredAllocation,
  type StoredRates,
  type QuoteState,
  type StoredLease,
  type StoredLeasePatch,
  type StoredTimeline,
  type StoredUsageRecord,
  type StoredCheckpoint,
  type CheckpointStatus,
  type InboxEvent,
  type TransitionRow,
} from './lease-store';

/**
 * Opens a store for reading only, as commands do while the daemon may be running or starting:
 * never migrates or writes, so it cannot disturb a daemon that owns the file. A store whose
 * schema is not this version's is refused rather than misread.
 */
export function openStoreReadOnly(path: string): Db {
  let db: Db;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    throw new ProviderError('STORE_OPEN_FAILED', `cannot open the store at ${path}: ${(err as Error).message}`, {
      input: path,
      cause: err,
      fix: 'run the command as the daemon\'s user (or root), and check that the data dir is the daemon\'s',
    });
  }
  const applied = (db.prepare('SELECT MAX(id) AS id FROM schema_migrations').get() as { id: number | null }).id ?? 0;
  const expected = Math.max(...MIGRATIONS.map((m) => m.id));
  if (applied !== expected) {
    db.close();
    throw new ProviderError('STORE_OPEN_FAILED', `the store at ${path} has schema version ${applied}; this provider reads version ${expected}`, {
      input: path,
      fix: applied < expected ? 'start the daemon of this version once (`provider start`): it migrates the store' : 'use the provider version that wrote this store',
    });
  }
  return db;
}
