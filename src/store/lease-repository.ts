import type { Allocation, EndReason, LeaseState, Rates } from '../vocabulary';
import type { Db } from './database';
import { fromJson, toJson } from './json';

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
  rates: Rates;
  /** The allocation the quote committed (LeaseOpened's terms): with tenant, deposit, rates and openedAt, the lease's terms. */
  allocation: Allocation;
  maxDuration: number;
  /** The chain's startedAt. */
  openedAt: number;
  /** Everything recovery needs to know of how far the lease got (no side flags). */
  state: LeaseState;
  endReason: EndReason | null;
  exitCode: number | null;
  /** The last transition's reason, for the tenant and the operator. */
  detail: string | null;
  /** closedAt from LeaseClosed, once seen. */
  closedAt: number | null;
  containerId: string | null;
  startedAt: number | null;
  endedAt: number | null;
  imageDigest: string | null;
  timeline: StoredTimeline | null;
  resultDigest: string | null;
  logsSha256: string | null;
  updatedAt: number;
}

export type StoredLeasePatch = Partial<Omit<StoredLease, 'leaseId' | 'runtimeId'>>;

export interface TransitionRow {
  fromState: string;
  toState: string;
  event: string;
  reason: string | null;
  at: number;
}

interface LeaseRow {
  lease_id: string;
  runtime_id: string;
  quote_nonce: string | null;
  tenant: string;
  manifest_hash: string;
  deposit: string;
  rates_json: string;
  allocation_json: string;
  max_duration: number;
  opened_at: number;
  state: LeaseState;
  end_reason: EndReason | null;
  exit_code: number | null;
  detail: string | null;
  closed_at: number | null;
  container_id: string | null;
  started_at: number | null;
  ended_at: number | null;
  image_digest: string | null;
  timeline_json: string | null;
  result_digest: string | null;
  logs_sha256: string | null;
  updated_at: number;
}

const LEASE_COLUMNS: Record<keyof StoredLeasePatch, [string, (v: never) => unknown]> = {
  quoteNonce: ['quote_nonce', (v: string | null) => v],
  tenant: ['tenant', (v: string) => v],
  manifestHash: ['manifest_hash', (v: string) => v],
  deposit: ['deposit', (v: bigint) => v.toString()],
  rates: ['rates_json', (v: Rates) => toJson(v)],
  allocation: ['allocation_json', (v: Allocation) => toJson(v)],
  maxDuration: ['max_duration', (v: number) => v],
  openedAt: ['opened_at', (v: number) => v],
  state: ['state', (v: LeaseState) => v],
  endReason: ['end_reason', (v: EndReason | null) => v],
  exitCode: ['exit_code', (v: number | null) => v],
  detail: ['detail', (v: string | null) => v],
  closedAt: ['closed_at', (v: number | null) => v],
  containerId: ['container_id', (v: string | null) => v],
  startedAt: ['started_at', (v: number | null) => v],
  endedAt: ['ended_at', (v: number | null) => v],
  imageDigest: ['image_digest', (v: string | null) => v],
  timeline: ['timeline_json', (v: StoredTimeline | null) => (v ? toJson(v) : null)],
  resultDigest: ['result_digest', (v: string | null) => v],
  logsSha256: ['logs_sha256', (v: string | null) => v],
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
    rates: fromJson<Rates>(row.rates_json),
    allocation: fromJson<Allocation>(row.allocation_json),
    maxDuration: row.max_duration,
    openedAt: row.opened_at,
    state: row.state,
    endReason: row.end_reason,
    exitCode: row.exit_code,
    detail: row.detail,
    closedAt: row.closed_at,
    containerId: row.container_id,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    imageDigest: row.image_digest,
    timeline: row.timeline_json ? fromJson<StoredTimeline>(row.timeline_json) : null,
    resultDigest: row.result_digest,
    logsSha256: row.logs_sha256,
    updatedAt: row.updated_at,
  };
}

/**
 * Leases and every transition they made. The store knows nothing of the lease state machine: it
 * records the states and transitions the engine hands it.
 */
export class LeaseRepository {
  constructor(private readonly db: Db) {}

  /** Inserts the lease with its first transition; false when it already exists (a replayed event). */
  insert(lease: StoredLease, transition: TransitionRow): boolean {
    return this.db.transaction(() => {
      const exists = this.db.prepare('SELECT 1 FROM leases WHERE lease_id = ?').get(lease.leaseId);
      if (exists) return false;
      this.db
        .prepare(
          `INSERT INTO leases (lease_id, runtime_id, quote_nonce, tenant, manifest_hash, deposit, rates_json, allocation_json, max_duration,
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
          toJson(lease.allocation),
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

  get(leaseId: string): StoredLease | undefined {
    const row = this.db.prepare('SELECT * FROM leases WHERE lease_id = ?').get(leaseId) as LeaseRow | undefined;
    return row && leaseFromRow(row);
  }

  byRuntimeId(runtimeId: string): StoredLease | undefined {
    const row = this.db.prepare('SELECT * FROM leases WHERE runtime_id = ?').get(runtimeId) as LeaseRow | undefined;
    return row && leaseFromRow(row);
  }

  /** Every lease (only those in `states`, when given), by lease id. */
  list(options: { states?: readonly LeaseState[] } = {}): StoredLease[] {
    const states = options.states;
    const sql = states
      ? `SELECT * FROM leases WHERE state IN (${states.map(() => '?').join(',')}) ORDER BY CAST(lease_id AS INTEGER)`
      : 'SELECT * FROM leases ORDER BY CAST(lease_id AS INTEGER)';
    return (this.db.prepare(sql).all(...(states ?? [])) as LeaseRow[]).map(leaseFromRow);
  }

  countByState(): Record<string, number> {
    const rows = this.db.prepare('SELECT state, COUNT(*) AS n FROM leases GROUP BY state').all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, r.n]));
  }

  /** Updates columns of a lease; with `transition`, records it in the same SQLite transaction. */
  update(leaseId: string, patch: StoredLeasePatch, transition?: TransitionRow): void {
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
}
