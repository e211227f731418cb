import type { Db } from './database';

export type OutboxState = 'queued' | 'pending' | 'confirmed' | 'reverted' | 'failed';

export interface OutboxEntry {
  id: number;
  /** The caller's idempotency key, e.g. `claim:12:5`: a second submit with it is the same intent. */
  key: string;
  sender: string;
  chainId: number;
  to: string;
  data: string;
  value: bigint;
  gasLimit: bigint | null;
  nonce: number | null;
  state: OutboxState;
  txHash: string | null;
  blockNumber: number | null;
  error: string | null;
  /** A ProviderError code for a reverted or failed intent (TX_REVERTED, TX_REJECTED, TX_NONCE_TAKEN). */
  errorCode: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface OutboxAttempt {
  id: number;
  outboxId: number;
  txHash: string;
  /** The signed transaction, kept so a restart re-broadcasts exactly it instead of signing anew. */
  rawTx: string;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  createdAt: number;
  broadcastAt: number | null;
}

export interface NewIntent {
  key: string;
  sender: string;
  chainId: number;
  to: string;
  data: string;
  value?: bigint;
}

interface EntryRow {
  id: number;
  intent_key: string;
  sender: string;
  chain_id: number;
  to_address: string;
  data: string;
  value: string;
  gas_limit: string | null;
  nonce: number | null;
  state: OutboxState;
  tx_hash: string | null;
  block_number: number | null;
  error: string | null;
  error_code: string | null;
  created_at: number;
  updated_at: number;
}

interface AttemptRow {
  id: number;
  outbox_id: number;
  tx_hash: string;
  raw_tx: string;
  max_fee_per_gas: string;
  max_priority_fee_per_gas: string;
  created_at: number;
  broadcast_at: number | null;
}

function toEntry(row: EntryRow): OutboxEntry {
  return {
    id: row.id,
    key: row.intent_key,
    sender: row.sender,
    chainId: row.chain_id,
    to: row.to_address,
    data: row.data,
    value: BigInt(row.value),
    gasLimit: row.gas_limit === null ? null : BigInt(row.gas_limit),
    nonce: row.nonce,
    state: row.state,
    txHash: row.tx_hash,
    blockNumber: row.block_number,
    error: row.error,
    errorCode: row.error_code,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toAttempt(row: AttemptRow): OutboxAttempt {
  return {
    id: row.id,
    outboxId: row.outbox_id,
    txHash: row.tx_hash,
    rawTx: row.raw_tx,
    maxFeePerGas: BigInt(row.max_fee_per_gas),
    maxPriorityFeePerGas: BigInt(row.max_priority_fee_per_gas),
    createdAt: row.created_at,
    broadcastAt: row.broadcast_at,
  };
}

/** Transactions the daemon intends to send, written before anything reaches the network. */
export class OutboxRepository {
  constructor(private readonly db: Db) {}

  /** Records an intent, or returns the one already recorded under the same key. */
  enqueue(intent: NewIntent, now: number): OutboxEntry {
    const existing = this.byKey(intent.key);
    if (existing) return existing;
    this.db
      .prepare(
        `INSERT INTO chain_outbox (intent_key, sender, chain_id, to_address, data, value, state, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)`,
      )
      .run(intent.key, intent.sender.toLowerCase(), intent.chainId, intent.to, intent.data, (intent.value ?? 0n).toString(), now, now);
    return this.byKey(intent.key)!;
  }

  byKey(key: string): OutboxEntry | undefined {
    const row = this.db.prepare('SELECT * FROM chain_outbox WHERE intent_key = ?').get(key) as EntryRow | undefined;
    return row && toEntry(row);
  }

  /** The latest intent whose key starts with `prefix` (`withdraw:`) still queued or pending. */
  openWithPrefix(prefix: string): { key: string; state: 'queued' | 'pending' } | undefined {
    const row = this.db
      .prepare("SELECT intent_key, state FROM chain_outbox WHERE intent_key LIKE ? ESCAPE '\\' AND state IN ('queued', 'pending') ORDER BY id DESC LIMIT 1")
      .get(`${prefix.replace(/[\\%_]/g, '\\$&')}%`) as { intent_key: string; state: 'queued' | 'pending' } | undefined;
    return row ? { key: row.intent_key, state: row.state } : undefined;
  }

  /** How many intents ever had a key starting with `prefix`: numbers the next one. */
  countWithPrefix(prefix: string): number {
    const row = this.db.prepare("SELECT COUNT(*) AS n FROM chain_outbox WHERE intent_key LIKE ? ESCAPE '\\'").get(`${prefix.replace(/[\\%_]/g, '\\$&')}%`) as { n: number };
    return row.n;
  }

  /** Intents that failed or reverted, oldest first. */
  failed(): OutboxEntry[] {
    return (this.db.prepare("SELECT * FROM chain_outbox WHERE state IN ('failed', 'reverted') ORDER BY id").all() as EntryRow[]).map(toEntry);
  }

  /** The sender of the first intent ever recorded (lowercase), if any. */
  firstSender(): string | undefined {
    return (this.db.prepare('SELECT sender FROM chain_outbox ORDER BY id LIMIT 1').get() as { sender: string } | undefined)?.sender;
  }

  byId(id: number): OutboxEntry | undefined {
    const row = this.db.prepare('SELECT * FROM chain_outbox WHERE id = ?').get(id) as EntryRow | undefined;
    return row && toEntry(row);
  }

  /** The entry to work on next: one already holding a nonce first, then the oldest queued. */
  nextOpen(sender: string, chainId: number): OutboxEntry | undefined {
    const row = this.db
      .prepare(
        `SELECT * FROM chain_outbox WHERE sender = ? AND chain_id = ? AND state IN ('queued', 'pending')
         ORDER BY (state = 'pending') DESC, nonce, id LIMIT 1`,
      )
      .get(sender.toLowerCase(), chainId) as EntryRow | undefined;
    return row && toEntry(row);
  }

  /** The highest nonce held by a transaction of this sender still out on this chain, or undefined. */
  highestPendingNonce(sender: string, chainId: number): number | undefined {
    const row = this.db
      .prepare(`SELECT MAX(nonce) AS nonce FROM chain_outbox WHERE sender = ? AND chain_id = ? AND state = 'pending'`)
      .get(sender.toLowerCase(), chainId) as { nonce: number | null };
    return row.nonce ?? undefined;
  }

  /** Assigns the nonce and records the first signed transaction, atomically. */
  assignNonce(id: number, nonce: number, gasLimit: bigint, attempt: Omit<OutboxAttempt, 'id' | 'outboxId' | 'broadcastAt'>): void {
    this.db.transaction(() => {
      this.db
        .prepare(`UPDATE chain_outbox SET nonce = ?, gas_limit = ?, state = 'pending', updated_at = ? WHERE id = ? AND state = 'queued'`)
        .run(nonce, gasLimit.toString(), attempt.createdAt, id);
      this.insertAttempt(id, attempt);
    })();
  }

  addAttempt(id: number, attempt: Omit<OutboxAttempt, 'id' | 'outboxId' | 'broadcastAt'>): void {
    this.insertAttempt(id, attempt);
  }

  private insertAttempt(id: number, attempt: Omit<OutboxAttempt, 'id' | 'outboxId' | 'broadcastAt'>): void {
    this.db
      .prepare(
        `INSERT INTO chain_outbox_attempt (outbox_id, tx_hash, raw_tx, max_fee_per_gas, max_priority_fee_per_gas, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(id, attempt.txHash, attempt.rawTx, attempt.maxFeePerGas.toString(), attempt.maxPriorityFeePerGas.toString(), attempt.createdAt);
  }

  markBroadcast(attemptId: number, now: number): void {
    this.db.prepare('UPDATE chain_outbox_attempt SET broadcast_at = ? WHERE id = ?').run(now, attemptId);
  }

  attempts(id: number): OutboxAttempt[] {
    return (this.db.prepare('SELECT * FROM chain_outbox_attempt WHERE outbox_id = ? ORDER BY id').all(id) as AttemptRow[]).map(toAttempt);
  }

  finish(
    id: number,
    outcome: { state: 'confirmed' | 'reverted' | 'failed'; txHash?: string; blockNumber?: number; error?: string; code?: string },
    now: number,
  ): void {
    this.db
      .prepare('UPDATE chain_outbox SET state = ?, tx_hash = ?, block_number = ?, error = ?, error_code = ?, updated_at = ? WHERE id = ?')
      .run(outcome.state, outcome.txHash ?? null, outcome.blockNumber ?? null, outcome.error ?? null, outcome.code ?? null, now, id);
  }
}
