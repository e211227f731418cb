import { join } from 'node:path';
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
