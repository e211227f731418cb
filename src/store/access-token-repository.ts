import type { Db } from './database';

export interface StoredAccessToken {
  tokenId: string;
  leaseId: string;
  tenant: string;
  /** The one container port it opens; null: every published port of the lease. */
  port: number | null;
  /** SHA-256 of the secret, hex: the secret itself is shown once, to the tenant who minted it. */
  secretHash: string;
  label: string | null;
  /** Unix seconds. */
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

interface Row {
  token_id: string;
  lease_id: string;
  tenant: string;
  port: number | null;
  secret_hash: string;
  label: string | null;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

/** The bearer tokens tenants mint to share a lease's ports (a notebook in a browser). */
export class AccessTokenRepository {
  constructor(private readonly db: Db) {}

  insert(token: StoredAccessToken): void {
    this.db
      .prepare('INSERT INTO access_tokens (token_id, lease_id, tenant, port, secret_hash, label, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(token.tokenId, token.leaseId, token.tenant, token.port, token.secretHash, token.label, token.createdAt, token.expiresAt, token.revokedAt);
  }

  get(tokenId: string): StoredAccessToken | undefined {
    const row = this.db.prepare('SELECT * FROM access_tokens WHERE token_id = ?').get(tokenId) as Row | undefined;
    return row && tokenOf(row);
  }

  /** Tokens of the lease neither revoked nor expired at `now`. */
  liveForLease(leaseId: string, now: number): StoredAccessToken[] {
    const rows = this.db.prepare('SELECT * FROM access_tokens WHERE lease_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at').all(leaseId, now) as Row[];
    return rows.map(tokenOf);
  }

  /** True when it was live and is revoked now. */
  revoke(tokenId: string, now: number): boolean {
    return this.db.prepare('UPDATE access_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL').run(now, tokenId).changes === 1;
  }

  /** Forgets tokens expired or revoked before `before` (unix seconds): their hashes open nothing. */
  prune(before: number): number {
    return this.db.prepare('DELETE FROM access_tokens WHERE expires_at < ? OR revoked_at < ?').run(before, before).changes;
  }
}

function tokenOf(row: Row): StoredAccessToken {
  return {
    tokenId: row.token_id,
    leaseId: row.lease_id,
    tenant: row.tenant,
    port: row.port,
    secretHash: row.secret_hash,
    label: row.label,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}
