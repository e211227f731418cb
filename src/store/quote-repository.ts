import type { Quote } from '../vocabulary';
import type { Db } from './database';
import { fromJson, toJson } from './json';

/** What a quote holds and, once opened, its lease runs with. */
export interface StoredAllocation {
  cpuMillis: number;
  memoryBytes: number;
  diskBytes: number;
  gpuUuids: string[];
  gpuModels: string[];
  /** Host ports, one per manifest port, in order. */
  hostPorts: number[];
  /** The manifest came with registry credentials (kept in memory only, lost on a restart). */
  registryAuthGiven?: boolean;
  /**
   * pricing.minimumPerLease when the quote was signed (base units): the open is held to the terms
   * quoted, whatever a reload changed since. Absent in quotes stored before it was recorded.
   */
  minimumDeposit?: string;
  /**
   * The image resolved before the quote was signed: the lease runs `pinned` and refuses any other
   * image. Absent in quotes stored before images were resolved at quote time.
   */
  image?: { pinned: string; digest: string; source: 'registry' | 'local'; sizeBytes: number | null };
}

export type QuoteState = 'open' | 'used' | 'expired' | 'released';

export interface StoredQuote {
  nonce: string;
  quoteHash: string;
  tenant: string;
  /** The manifest without registryAuth (credentials are never stored). */
  manifest: Record<string, unknown>;
  manifestHash: string;
  quote: Quote;
  signature: string;
  allocation: StoredAllocation;
  /** Unix seconds. */
  expiresAt: number;
  state: QuoteState;
  createdAt: number;
}

interface QuoteRow {
  nonce: string;
  quote_hash: string;
  tenant: string;
  manifest_json: string;
  manifest_hash: string;
  quote_json: string;
  signature: string;
  allocation_json: string;
  expires_at: number;
  state: QuoteState;
  created_at: number;
}

function quoteFromRow(row: QuoteRow): StoredQuote {
  return {
    nonce: row.nonce,
    quoteHash: row.quote_hash,
    tenant: row.tenant,
    manifest: JSON.parse(row.manifest_json) as Record<string, unknown>,
    manifestHash: row.manifest_hash,
    quote: fromJson<Quote>(row.quote_json),
    signature: row.signature,
    allocation: JSON.parse(row.allocation_json) as StoredAllocation,
    expiresAt: row.expires_at,
    state: row.state,
    createdAt: row.created_at,
  };
}

/** The quotes this provider signed, with the capacity each holds until it is used or lapses. */
export class QuoteRepository {
  constructor(private readonly db: Db) {}

  insert(quote: StoredQuote): void {
    this.db
      .prepare(
        `INSERT INTO quotes (nonce, quote_hash, tenant, manifest_json, manifest_hash, quote_json, signature, allocation_json, expires_at, state, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        quote.nonce,
        quote.quoteHash,
        quote.tenant,
        JSON.stringify(quote.manifest),
        quote.manifestHash,
        toJson(quote.quote),
        quote.signature,
        JSON.stringify(quote.allocation),
        quote.expiresAt,
        quote.state,
        quote.createdAt,
      );
  }

  get(nonce: string): StoredQuote | undefined {
    const row = this.db.prepare('SELECT * FROM quotes WHERE nonce = ?').get(nonce) as QuoteRow | undefined;
    return row && quoteFromRow(row);
  }

  /** Quotes still holding capacity (not used, not released), whatever their expiry. */
  open(): StoredQuote[] {
    return (this.db.prepare("SELECT * FROM quotes WHERE state = 'open' ORDER BY created_at").all() as QuoteRow[]).map(quoteFromRow);
  }

  setState(nonce: string, state: QuoteState): void {
    this.db.prepare('UPDATE quotes SET state = ? WHERE nonce = ?').run(state, nonce);
  }

  /** Marks open quotes past `nowSeconds` expired; returns their nonces. */
  expire(nowSeconds: number): string[] {
    const rows = this.db.prepare("SELECT nonce FROM quotes WHERE state = 'open' AND expires_at < ?").all(nowSeconds) as { nonce: string }[];
    this.db.prepare("UPDATE quotes SET state = 'expired' WHERE state = 'open' AND expires_at < ?").run(nowSeconds);
    return rows.map((r) => r.nonce);
  }
}
