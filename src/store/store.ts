import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ProviderError } from '../errors';
import { AccessTokenRepository } from './access-token-repository';
import { CheckpointRepository } from './checkpoint-repository';
import { CursorRepository } from './cursor-repository';
import { migrate, openDatabase, type Db } from './database';
import { ExecAuditRepository } from './exec-audit-repository';
import { InboxRepository } from './inbox-repository';
import { LeaseRepository } from './lease-repository';
import { MetaRepository } from './meta-repository';
import { MIGRATIONS } from './migrations';
import { SqliteNonceLedger } from './nonce-ledger';
import { OutboxRepository } from './outbox-repository';
import { QuoteRepository } from './quote-repository';
import { UsageRepository } from './usage-repository';

/**
 * The daemon's SQLite file, one repository per aggregate: what the lease engine promised and
 * earned (quotes, leases, usage records, checkpoints, the chain inbox), and what the chain client
 * keeps (the outbox of transactions, the followers' cursors). Amounts and 256-bit values are
 * stored as decimal strings (SQLite integers are 64-bit); times are unix seconds. The connection
 * stays in here: other modules see repositories only.
 */
export class Store {
  readonly meta: MetaRepository;
  readonly quotes: QuoteRepository;
  readonly leases: LeaseRepository;
  readonly usage: UsageRepository;
  readonly checkpoints: CheckpointRepository;
  readonly inbox: InboxRepository;
  readonly outbox: OutboxRepository;
  readonly cursors: CursorRepository;
  readonly execSessions: ExecAuditRepository;
  readonly accessTokens: AccessTokenRepository;

  constructor(private readonly db: Db) {
    this.meta = new MetaRepository(db);
    this.quotes = new QuoteRepository(db);
    this.leases = new LeaseRepository(db);
    this.usage = new UsageRepository(db);
    this.checkpoints = new CheckpointRepository(db);
    this.inbox = new InboxRepository(db);
    this.outbox = new OutboxRepository(db);
    this.cursors = new CursorRepository(db);
    this.execSessions = new ExecAuditRepository(db);
    this.accessTokens = new AccessTokenRepository(db);
  }

  /** Runs `fn` in one SQLite transaction: every write it makes through the repositories commits together, or none. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** The API's request nonces, expired by `nowSeconds`. */
  nonceLedger(nowSeconds: () => number): SqliteNonceLedger {
    return new SqliteNonceLedger(this.db, nowSeconds);
  }

  /** Folds the write-ahead log into the file, so a stopped daemon leaves one file behind. */
  checkpointWal(): void {
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // a checkpoint is an optimisation; the WAL is durable as it is
    }
  }

  close(): void {
    this.db.close();
  }
}

/**
 * The store's file: one per chain and marketplace, so a new devnet never meets old leases.
 * Commands that read the store while the daemon is down find it through this too.
 */
export function storePathFor(dataDir: string, chainId: number, marketplaceAddress: string): string {
  return join(dataDir, `store-${chainId}-${marketplaceAddress.slice(2, 10).toLowerCase()}.sqlite`);
}

/** Opens the store file and brings its schema up to date. */
export function openStore(path: string): Store {
  const db = openDatabase(path);
  try {
    migrate(db, MIGRATIONS);
  } catch (err) {
    db.close();
    throw err;
  }
  return new Store(db);
}

/**
 * Opens a store for reading only, as commands do while the daemon may be running or starting:
 * never migrates or writes, so it cannot disturb a daemon that owns the file. A store whose
 * schema is not this version's is refused rather than misread.
 */
export function openStoreReadOnly(path: string): Store {
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
  return new Store(db);
}
