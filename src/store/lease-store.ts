import type { Db } from './database';

/**
 * What the lease engine promised and earned: quotes, leases and every transition they made,
 * usage records, checkpoints, and the inbox of marketplace events still to act on. Amounts and
 * 256-bit values are stored as decimal strings (SQLite integers are 64-bit); times are unix
 * seconds. The store knows nothing of the lease state machine: states are plain strings here.
 */

export interface StoredRates {
  perSecond: bigint;
  perCpuSecond: bigint;
  perGpuSecond: bigint;
  perGiBEgress: bigint;
}

export interface StoredQuoteBody {
  provider: string;
  tenant: string;
  manifestHash: string;
  rates: StoredRates;
  maxRatePerSecond: bigint;
  maxDuration: bigint;
  expiresAt: bigint;
  nonce: bigint;
}

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
}

export type QuoteState = 'open' | 'used' | 'expired' | 'released';

export interface StoredQuote {
  nonce: string;
  quoteHash: string;
  tenant: string;
  /** The manifest without registryAuth (credentials are never stored). */
  manifest: Record<string, unknown>;
  manifestHash: string;
  quote: StoredQuoteBody;
  signature: string;
  allocation: StoredAllocation;
  /** Unix seconds. */
  expiresAt: number;
  state: QuoteState;
  createdAt: number;
}

export interface StoredTimeline {
  nextSeq: number;
  boundary: number;
  counters: { cpuNanos: bigint; memoryBytes: number; rxBytes: bigint; txBytes: bigint } | undefined;
  gpuCount: number;
}

export interface StoredLease {
  leaseId: string;
  /** The lease's name towards Docker: unique per data dir, so two daemons on one engine never clash. */
  runtimeId: string;
  /** Null when the lease was opened with a quote this store never issued. */
  quoteNonce: string | null;
  tenant: string;
  manifestHash: string;
  deposit: bigint;
  rates: StoredRates;
  maxRatePerSecond: bigint;
  maxDuration: number;
  /** The chain's startedAt. */
  openedAt: number;
  state: string;
  endReason: string | null;
  exitCode: number | null;
  finalised: boolean;
  /** The last transition's reason, for the tenant and the operator. */
  detail: string | null;
  /** closedAt from LeaseClosed, once seen. */
  closedAt: number | null;
  containerId: string | null;
  startedAt: number | null;
  endedAt: number | null;
  imageDigest: string | null;
  timeline: StoredTimeline | null;
  allocationReleased: boolean;
  finalUsageDone: boolean;
  resultDigest: string | null;
  logsSha256: string | null;
  /** The chain says the lease is settled (escrow returned): nothing more to do on-chain. */
  chainSettled: boolean;
  updatedAt: number;
}

export type StoredLeasePatch = Partial<Omit<StoredLease, 'leaseId' | 'runtimeId'>>;

export interface StoredUsageRecord {
  leaseId: bigint;
  seq: bigint;
  t0: bigint;
  t1: bigint;
  cpuMillis: bigint;
  memoryByteSeconds: bigint;
  gpuMillis: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  amount: bigint;
}

export type CheckpointStatus = 'signed' | 'redeemed' | 'claimed' | 'final';

export interface StoredCheckpoint {
  leaseId: bigint;
  seq: bigint;
  usageRoot: string;
  cumulativeAmount: bigint;
  periodEnd: bigint;
  resultDigest: string;
  /** How many usage records (seq 0..n-1) the root is over. */
  recordCount: number;
  final: boolean;
  providerSig: string;
  tenantSig: string | null;
  status: CheckpointStatus;
  createdAt: number;
}

export interface InboxEvent {
  id: number;
  name: string;
  leaseId: string | null;
  args: Record<string, unknown>;
  blockNumber: number;
  logIndex: number;
}

export interface TransitionRow {
  fromState: string;
  toState: string;
  event: string;
  reason: string | null;
  at: number;
}

// ------------------------------------------------------------------ JSON with bigints

const BIG = '$big:';

export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${BIG}${v.toString()}` : v));
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => (typeof v === 'string' && v.startsWith(BIG) ? BigInt(v.slice(BIG.length)) : v)) as T;
}

interface LeaseRow {
  lease_id: string;
  runtime_id: string;
  quote_nonce: string | null;
  tenant: string;
  manifest_hash: string;
  deposit: string;
  rates_json: string;
  max_rate_per_second: string;
  max_duration: number;
  opened_at: number;
  state: string;
  end_reason: string | null;
  exit_code: number | null;
  finalised: number;
  detail: string | null;
  closed_at: number | null;
  container_id: string | null;
  started_at: number | null;
  ended_at: number | null;
  image_digest: string | null;
  timeline_json: string | null;
  allocation_released: number;
  final_usage_done: number;
  result_digest: string | null;
  logs_sha256: string | null;
  chain_settled: number;
  updated_at: number;
}

const LEASE_COLUMNS: Record<keyof StoredLeasePatch, [string, (v: never) => unknown]> = {
  quoteNonce: ['quote_nonce', (v: string | null) => v],
  tenant: ['tenant', (v: string) => v],
  manifestHash: ['manifest_hash', (v: string) => v],
  deposit: ['deposit', (v: bigint) => v.toString()],
  rates: ['rates_json', (v: StoredRates) => toJson(v)],
  maxRatePerSecond: ['max_rate_per_second', (v: bigint) => v.toString()],
  maxDuration: ['max_duration', (v: number) => v],
  openedAt: ['opened_at', (v: number) => v],
  state: ['state', (v: string) => v],
  endReason: ['end_reason', (v: string | null) => v],
  exitCode: ['exit_code', (v: number | null) => v],
  finalised: ['finalised', (v: boolean) => (v ? 1 : 0)],
  detail: ['detail', (v: string | null) => v],
  closedAt: ['closed_at', (v: number | null) => v],
  containerId: ['container_id', (v: string | null) => v],
  startedAt: ['started_at', (v: number | null) => v],
  endedAt: ['ended_at', (v: number | null) => v],
  imageDigest: ['image_digest', (v: string | null) => v],
  timeline: ['timeline_json', (v: StoredTimeline | null) => (v ? toJson(v) : null)],
  allocationReleased: ['allocation_released', (v: boolean) => (v ? 1 : 0)],
  finalUsageDone: ['final_usage_done', (v: boolean) => (v ? 1 : 0)],
  resultDigest: ['result_digest', (v: string | null) => v],
  logsSha256: ['logs_sha256', (v: string | null) => v],
  chainSettled: ['chain_settled', (v: boolean) => (v ? 1 : 0)],
  updatedAt: ['updated_at', (v: number) => v],
};

function leaseFromRow(row: LeaseRow): StoredLease {
  return {
    leaseId: row.lease_id,
    runtimeId: row.runtime_id,
    quoteNonce: row.quote_nonce,
    tenant: row.tenant,
    manifestHash: row.manifest_hash,
    deposit: BigInt(row.deposit),
    rates: fromJson<StoredRates>(row.rates_json),
    maxRatePerSecond: BigInt(row.max_rate_per_second),
    maxDuration: row.max_duration,
    openedAt: row.opened_at,
    state: row.state,
    endReason: row.end_reason,
    exitCode: row.exit_code,
    finalised: row.finalised === 1,
    detail: row.detail,
    closedAt: row.closed_at,
    containerId: row.container_id,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    imageDigest: row.image_digest,
    timeline: row.timeline_json ? fromJson<StoredTimeline>(row.timeline_json) : null,
    allocationReleased: row.allocation_released === 1,
    finalUsageDone: row.final_usage_done === 1,
    resultDigest: row.result_digest,
    logsSha256: row.logs_sha256,
    chainSettled: row.chain_settled === 1,
    updatedAt: row.updated_at,
  };
}

interface UsageRow {
  lease_id: string;
  seq: number;
  t0: number;
  t1: number;
  cpu_millis: string;
  memory_byte_seconds: string;
  gpu_millis: string;
  rx_bytes: string;
  tx_bytes: string;
  amount: string;
}

interface CheckpointRow {
  lease_id: string;
  seq: number;
  usage_root: string;
  cumulative_amount: string;
  period_end: number;
  result_digest: string;
  record_count: number;
  final: number;
  provider_sig: string;
  tenant_sig: string | null;
  status: CheckpointStatus;
  created_at: number;
}

function checkpointFromRow(row: CheckpointRow): StoredCheckpoint {
  return {
    leaseId: BigInt(row.lease_id),
    seq: BigInt(row.seq),
    usageRoot: row.usage_root,
    cumulativeAmount: BigInt(row.cumulative_amount),
    periodEnd: BigInt(row.period_end),
    resultDigest: row.result_digest,
    recordCount: row.record_count,
    final: row.final === 1,
    providerSig: row.provider_sig,
    tenantSig: row.tenant_sig,
    status: row.status,
    createdAt: row.created_at,
  };
}

export class LeaseStore {
  constructor(readonly db: Db) {}

  // ---------------------------------------------------------------- meta

  meta(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM store_meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO store_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  // ---------------------------------------------------------------- quotes

  insertQuote(quote: StoredQuote): void {
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

  quote(nonce: string): StoredQuote | undefined {
    const row = this.db.prepare('SELECT * FROM quotes WHERE nonce = ?').get(nonce) as QuoteRow | undefined;
    return row && quoteFromRow(row);
  }

  /** Quotes still holding capacity (not used, not released), whatever their expiry. */
  openQuotes(): StoredQuote[] {
    return (this.db.prepare("SELECT * FROM quotes WHERE state = 'open' ORDER BY created_at").all() as QuoteRow[]).map(quoteFromRow);
  }

  setQuoteState(nonce: string, state: QuoteState): void {
    this.db.prepare('UPDATE quotes SET state = ? WHERE nonce = ?').run(state, nonce);
  }

  /** Marks open quotes past `nowSeconds` expired; returns their nonces. */
  expireQuotes(nowSeconds: number): string[] {
    const rows = this.db.prepare("SELECT nonce FROM quotes WHERE state = 'open' AND expires_at < ?").all(nowSeconds) as { nonce: string }[];
    this.db.prepare("UPDATE quotes SET state = 'expired' WHERE state = 'open' AND expires_at < ?").run(nowSeconds);
    return rows.map((r) => r.nonce);
  }

  // ---------------------------------------------------------------- leases

  /** Inserts the lease with its first transition; false when it already exists (a replayed event). */
  insertLease(lease: StoredLease, transition: TransitionRow): boolean {
    return this.db.transaction(() => {
      const exists = this.db.prepare('SELECT 1 FROM leases WHERE lease_id = ?').get(lease.leaseId);
      if (exists) return false;
      this.db
        .prepare(
          `INSERT INTO leases (lease_id, runtime_id, quote_nonce, tenant, manifest_hash, deposit, rates_json, max_rate_per_second, max_duration,
             opened_at, state, detail, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          lease.leaseId,
          lease.runtimeId,
          lease.quoteNonce,
          lease.tenant,
          lease.manifestHash,
          lease.deposit.toString(),
          toJson(lease.rates),
          lease.maxRatePerSecond.toString(),
          lease.maxDuration,
          lease.openedAt,
          lease.state,
          lease.detail,
          lease.updatedAt,
        );
      this.insertTransition(lease.leaseId, transition);
      return true;
    })();
  }

  lease(leaseId: string): StoredLease | undefined {
    const row = this.db.prepare('SELECT * FROM leases WHERE lease_id = ?').get(leaseId) as LeaseRow | undefined;
    return row && leaseFromRow(row);
  }

  leaseByRuntimeId(runtimeId: string): StoredLease | undefined {
    const row = this.db.prepare('SELECT * FROM leases WHERE runtime_id = ?').get(runtimeId) as LeaseRow | undefined;
    return row && leaseFromRow(row);
  }

  leases(options: { excludeStates?: readonly string[] } = {}): StoredLease[] {
    const exclude = options.excludeStates ?? [];
    const sql = exclude.length
      ? `SELECT * FROM leases WHERE state NOT IN (${exclude.map(() => '?').join(',')}) ORDER BY CAST(lease_id AS INTEGER)`
      : 'SELECT * FROM leases ORDER BY CAST(lease_id AS INTEGER)';
    return (this.db.prepare(sql).all(...exclude) as LeaseRow[]).map(leaseFromRow);
  }

  countByState(): Record<string, number> {
    const rows = this.db.prepare('SELECT state, COUNT(*) AS n FROM leases GROUP BY state').all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** Updates columns of a lease; with `transition`, records it in the same SQLite transaction. */
  updateLease(leaseId: string, patch: StoredLeasePatch, transition?: TransitionRow): void {
    this.db.transaction(() => {
      const entries = Object.entries(patch).filter(([, v]) => v !== undefined) as [keyof StoredLeasePatch, unknown][];
      if (entries.length > 0) {
        const sets = entries.map(([key]) => `${LEASE_COLUMNS[key][0]} = ?`);
        const values = entries.map(([key, value]) => (LEASE_COLUMNS[key][1] as (v: unknown) => unknown)(value));
        this.db.prepare(`UPDATE leases SET ${sets.join(', ')} WHERE lease_id = ?`).run(...(values as never[]), leaseId);
      }
      if (transition) this.insertTransition(leaseId, transition);
    })();
  }

  transitions(leaseId: string): TransitionRow[] {
    return (
      this.db
        .prepare('SELECT from_state, to_state, event, reason, at FROM lease_transitions WHERE lease_id = ? ORDER BY id')
        .all(leaseId) as { from_state: string; to_state: string; event: string; reason: string | null; at: number }[]
    ).map((r) => ({ fromState: r.from_state, toState: r.to_state, event: r.event, reason: r.reason, at: r.at }));
  }

  private insertTransition(leaseId: string, t: TransitionRow): void {
    this.db
      .prepare('INSERT INTO lease_transitions (lease_id, from_state, to_state, event, reason, at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(leaseId, t.fromState, t.toState, t.event, t.reason, t.at);
  }

  // ---------------------------------------------------------------- usage

  /**
   * Stores a usage record and the timeline state after it, together: a restart resumes exactly
   * where the stored records end. The record's seq must be the next one (no hole, no overlap).
   */
  appendUsage(leaseId: string, record: StoredUsageRecord, timeline: StoredTimeline): void {
    this.db.transaction(() => {
      const last = this.db.prepare('SELECT seq, t1 FROM usage_records WHERE lease_id = ? ORDER BY seq DESC LIMIT 1').get(leaseId) as
        | { seq: number; t1: number }
        | undefined;
      const expectedSeq = last ? last.seq + 1 : 0;
      if (Number(record.seq) !== expectedSeq || (last && Number(record.t0) !== last.t1)) {
        throw new Error(`usage record ${record.seq} of lease ${leaseId} does not follow record ${last?.seq ?? 'none'} (t1 ${last?.t1 ?? '-'}, t0 ${record.t0})`);
      }
      this.db
        .prepare(
          `INSERT INTO usage_records (lease_id, seq, t0, t1, cpu_millis, memory_byte_seconds, gpu_millis, rx_bytes, tx_bytes, amount)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          leaseId,
          Number(record.seq),
          Number(record.t0),
          Number(record.t1),
          record.cpuMillis.toString(),
          record.memoryByteSeconds.toString(),
          record.gpuMillis.toString(),
          record.rxBytes.toString(),
          record.txBytes.toString(),
          record.amount.toString(),
        );
      this.db.prepare('UPDATE leases SET timeline_json = ? WHERE lease_id = ?').run(toJson(timeline), leaseId);
    })();
  }

  usageRecords(leaseId: string): StoredUsageRecord[] {
    return (this.db.prepare('SELECT * FROM usage_records WHERE lease_id = ? ORDER BY seq').all(leaseId) as UsageRow[]).map((r) => ({
      leaseId: BigInt(r.lease_id),
      seq: BigInt(r.seq),
      t0: BigInt(r.t0),
      t1: BigInt(r.t1),
      cpuMillis: BigInt(r.cpu_millis),
      memoryByteSeconds: BigInt(r.memory_byte_seconds),
      gpuMillis: BigInt(r.gpu_millis),
      rxBytes: BigInt(r.rx_bytes),
      txBytes: BigInt(r.tx_bytes),
      amount: BigInt(r.amount),
    }));
  }

  // ---------------------------------------------------------------- checkpoints

  insertCheckpoint(cp: StoredCheckpoint): void {
    this.db
      .prepare(
        `INSERT INTO checkpoints (lease_id, seq, usage_root, cumulative_amount, period_end, result_digest, record_count, final, provider_sig, tenant_sig, status, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        cp.leaseId.toString(),
        Number(cp.seq),
        cp.usageRoot,
        cp.cumulativeAmount.toString(),
        Number(cp.periodEnd),
        cp.resultDigest,
        cp.recordCount,
        cp.final ? 1 : 0,
        cp.providerSig,
        cp.tenantSig,
        cp.status,
        cp.createdAt,
      );
  }

  checkpoints(leaseId: string): StoredCheckpoint[] {
    return (this.db.prepare('SELECT * FROM checkpoints WHERE lease_id = ? ORDER BY seq').all(leaseId) as CheckpointRow[]).map(checkpointFromRow);
  }

  checkpoint(leaseId: string, seq: number): StoredCheckpoint | undefined {
    const row = this.db.prepare('SELECT * FROM checkpoints WHERE lease_id = ? AND seq = ?').get(leaseId, seq) as CheckpointRow | undefined;
    return row && checkpointFromRow(row);
  }

  setTenantSignature(leaseId: string, seq: number, signature: string): void {
    this.db.prepare('UPDATE checkpoints SET tenant_sig = ? WHERE lease_id = ? AND seq = ?').run(signature, leaseId, seq);
  }

  setCheckpointStatus(leaseId: string, seq: number, status: CheckpointStatus): void {
    this.db.prepare('UPDATE checkpoints SET status = ? WHERE lease_id = ? AND seq = ?').run(status, leaseId, seq);
  }

  // ---------------------------------------------------------------- chain inbox

  /** Records a marketplace event for the lease engine; a replayed one (same log) is ignored. */
  addInboxEvent(event: Omit<InboxEvent, 'id'>): void {
    this.db
      .prepare('INSERT OR IGNORE INTO chain_inbox (name, lease_id, args_json, block_number, log_index) VALUES (?, ?, ?, ?, ?)')
      .run(event.name, event.leaseId, toJson(event.args), event.blockNumber, event.logIndex);
  }

  openInbox(): InboxEvent[] {
    return (
      this.db.prepare('SELECT * FROM chain_inbox WHERE handled = 0 ORDER BY block_number, log_index').all() as {
        id: number;
        name: string;
        lease_id: string | null;
        args_json: string;
        block_number: number;
        log_index: number;
      }[]
    ).map((r) => ({ id: r.id, name: r.name, leaseId: r.lease_id, args: fromJson(r.args_json), blockNumber: r.block_number, logIndex: r.log_index }));
  }

  markHandled(id: number): void {
    this.db.prepare('UPDATE chain_inbox SET handled = 1 WHERE id = ?').run(id);
  }
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
    quote: fromJson<StoredQuoteBody>(row.quote_json),
    signature: row.signature,
    allocation: JSON.parse(row.allocation_json) as StoredAllocation,
    expiresAt: row.expires_at,
    state: row.state,
    createdAt: row.created_at,
  };
}

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
