import type { Migration } from './database';

/**
 * The store's schema, in order. Append; never edit a migration that has shipped. Other modules
 * (the lease engine) add theirs here with the next free id.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'chain outbox and block cursors',
    up: `
      CREATE TABLE chain_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        intent_key TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        to_address TEXT NOT NULL,
        data TEXT NOT NULL,
        value TEXT NOT NULL DEFAULT '0',
        gas_limit TEXT,
        nonce INTEGER,
        state TEXT NOT NULL CHECK (state IN ('queued', 'pending', 'confirmed', 'reverted', 'failed')),
        tx_hash TEXT,
        block_number INTEGER,
        error TEXT,
        error_code TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX chain_outbox_open ON chain_outbox (sender, state, id);
      CREATE INDEX chain_outbox_nonce ON chain_outbox (sender, chain_id, nonce) WHERE nonce IS NOT NULL;

      CREATE TABLE chain_outbox_attempt (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        outbox_id INTEGER NOT NULL REFERENCES chain_outbox (id),
        tx_hash TEXT NOT NULL UNIQUE,
        raw_tx TEXT NOT NULL,
        max_fee_per_gas TEXT NOT NULL,
        max_priority_fee_per_gas TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        broadcast_at INTEGER
      );
      CREATE INDEX chain_outbox_attempt_outbox ON chain_outbox_attempt (outbox_id, id);

      CREATE TABLE chain_cursor (
        name TEXT PRIMARY KEY,
        block_number INTEGER NOT NULL,
        block_hash TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
];
