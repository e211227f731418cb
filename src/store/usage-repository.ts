import type { UsageRecord } from '../vocabulary';
import type { Db } from './database';
import { toJson } from './json';
import type { StoredTimeline } from './lease-repository';

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

/** Each lease's usage records: contiguous, never rewritten, what its checkpoints are signed over. */
export class UsageRepository {
  constructor(private readonly db: Db) {}

  /**
   * Stores a usage record and the lease's timeline state after it, together: a restart resumes
   * exactly where the stored records end. The record's seq must be the next one (no hole, no
   * overlap).
   */
  append(leaseId: string, record: UsageRecord, timeline: StoredTimeline): void {
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

  /** A lease's usage records by seq. */
  forLease(leaseId: string): UsageRecord[] {
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
}
