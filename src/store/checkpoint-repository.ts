import type { Checkpoint, CheckpointStatus } from '../vocabulary';
import type { Db } from './database';

/** A checkpoint as signed (the chain's shape), with what the provider keeps beside it. */
export interface StoredCheckpoint extends Checkpoint {
  /**
   * The store's own numbering of a lease's checkpoints, from 1: the API's countersign route and
   * the outbox keys name a checkpoint by it. The chain knows none (v2 checkpoints have no seq).
   */
  seq: bigint;
  final: boolean;
  providerSig: string;
  tenantSig: string | null;
  status: CheckpointStatus;
  createdAt: number;
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
    recordCount: BigInt(row.record_count),
    final: row.final === 1,
    providerSig: row.provider_sig,
    tenantSig: row.tenant_sig,
    status: row.status,
    createdAt: row.created_at,
  };
}

/** A lease's latest checkpoint, and how many of its checkpoints the tenant countersigned. */
export interface CheckpointSummary {
  latest: StoredCheckpoint;
  countersigned: number;
}

/** Bound parameters per statement: SQLite caps them (32766 here), a chunk keeps far below. */
const IDS_PER_QUERY = 500;

/** The checkpoints signed over each lease's usage, and how far each got on-chain. */
export class CheckpointRepository {
  constructor(private readonly db: Db) {}

  insert(cp: StoredCheckpoint): void {
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
        Number(cp.recordCount),
        cp.final ? 1 : 0,
        cp.providerSig,
        cp.tenantSig,
        cp.status,
        cp.createdAt,
      );
  }

  /** A lease's checkpoints by seq, oldest first. */
  forLease(leaseId: string): StoredCheckpoint[] {
    return (this.db.prepare('SELECT * FROM checkpoints WHERE lease_id = ? ORDER BY seq').all(leaseId) as CheckpointRow[]).map(checkpointFromRow);
  }

  /**
   * The summary of each of these leases that has a checkpoint, in one query per few hundred leases
   * (the settlement loop looks at every running lease each round).
   */
  summaries(leaseIds: readonly string[]): Map<string, CheckpointSummary> {
    const out = new Map<string, CheckpointSummary>();
    for (let i = 0; i < leaseIds.length; i += IDS_PER_QUERY) {
      const ids = leaseIds.slice(i, i + IDS_PER_QUERY);
      const rows = this.db
        .prepare(
          `SELECT c.*, (SELECT COUNT(*) FROM checkpoints s WHERE s.lease_id = c.lease_id AND s.tenant_sig IS NOT NULL) AS countersigned
           FROM checkpoints c
           WHERE c.lease_id IN (${ids.map(() => '?').join(',')})
             AND c.seq = (SELECT MAX(m.seq) FROM checkpoints m WHERE m.lease_id = c.lease_id)`,
        )
        .all(...ids) as (CheckpointRow & { countersigned: number })[];
      for (const row of rows) out.set(row.lease_id, { latest: checkpointFromRow(row), countersigned: row.countersigned });
    }
    return out;
  }

  get(leaseId: string, seq: number): StoredCheckpoint | undefined {
    const row = this.db.prepare('SELECT * FROM checkpoints WHERE lease_id = ? AND seq = ?').get(leaseId, seq) as CheckpointRow | undefined;
    return row && checkpointFromRow(row);
  }

  setTenantSignature(leaseId: string, seq: number, signature: string): void {
    this.db.prepare('UPDATE checkpoints SET tenant_sig = ? WHERE lease_id = ? AND seq = ?').run(signature, leaseId, seq);
  }

  setStatus(leaseId: string, seq: number, status: CheckpointStatus): void {
    this.db.prepare('UPDATE checkpoints SET status = ? WHERE lease_id = ? AND seq = ?').run(status, leaseId, seq);
  }
}
