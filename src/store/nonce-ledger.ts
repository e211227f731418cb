import type { Db } from './database';

/**
 * API request nonces (replay protection) kept in SQLite, so a request captured before a restart
 * cannot be replayed after it. Implements the api module's NonceLedger shape.
 */
export class SqliteNonceLedger {
  constructor(
    private readonly db: Db,
    private readonly nowSeconds: () => number,
  ) {}

  claim(signer: string, nonce: string, expiresAt: number): boolean {
    const now = this.nowSeconds();
    this.db.prepare('DELETE FROM api_nonces WHERE expires_at < ?').run(now);
    const result = this.db
      .prepare('INSERT OR IGNORE INTO api_nonces (signer, nonce, expires_at) VALUES (?, ?, ?)')
      .run(signer.toLowerCase(), nonce.toLowerCase(), expiresAt);
    return result.changes === 1;
  }
}
