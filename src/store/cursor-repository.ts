import type { Db } from './database';

export interface BlockCursor {
  blockNumber: number;
  blockHash: string;
}

/** The last block each event follower has fully processed. */
export class CursorRepository {
  constructor(private readonly db: Db) {}

  get(name: string): BlockCursor | undefined {
    const row = this.db.prepare('SELECT block_number, block_hash FROM chain_cursor WHERE name = ?').get(name) as
      | { block_number: number; block_hash: string }
      | undefined;
    return row && { blockNumber: row.block_number, blockHash: row.block_hash };
  }

  /** Call inside the same transaction as the writes of the events up to this block. */
  set(name: string, cursor: BlockCursor, now: number): void {
    this.db
      .prepare(
        `INSERT INTO chain_cursor (name, block_number, block_hash, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET block_number = excluded.block_number, block_hash = excluded.block_hash, updated_at = excluded.updated_at`,
      )
      .run(name, cursor.blockNumber, cursor.blockHash, now);
  }
}
