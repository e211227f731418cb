import type { UsageRecord } from '../vocabulary';
import type { Db } from './database';
import { toJson } from './json';
import type { StoredTimeline } from './lease-repository';

/** One GPU (or MIG slice) of a lease as read at the end of usage record `seq`. Informational: not in the record. */
export interface GpuUsageReading {
  seq: number;
  /** Unix seconds: the record's t1, when it was read. */
  at: number;
  uuid: string;
  /** A MIG slice's GPU: `utilization` is that GPU's (nvidia-smi reads none per slice). */
  parentUuid: string | null;
  /** 0..1; null when the driver reports none. */
  utilization: number | null;
  memoryUsedBytes: number | null;
  memoryTotalBytes: number | null;
}

interface GpuRow {
  seq: number;
  at: number;
  uuid: string;
  parent_uuid: string | null;
  utilization: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
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
  total: string;
}

/** Each lease's usage records: contiguous, never rewritten, what its checkpoints are signed over. */
export class UsageRepository {
  constructor(private readonly db: Db) {}

  /**
   * Stores a usage record and the lease's timeline state after it, together: a restart resumes
   * exactly where the stored records end. The record's index must be the next one and its total
   * the last total plus its amount (no hole, no overlap, one running sum). `gpus`: what the lease's
   * GPUs were doing at the record's end, kept beside it.
   */
  append(leaseId: string, record: UsageRecord, timeline: StoredTimeline, gpus: readonly Omit<GpuUsageReading, 'seq' | 'at'>[] = []): void {
    this.db.transaction(() => {
      const last = this.db.prepare('SELECT seq, t1, total FROM usage_records WHERE lease_id = ? ORDER BY seq DESC LIMIT 1').get(leaseId) as
        | { seq: number; t1: number; total: string }
        | undefined;
      const expectedIndex = last ? last.seq + 1 : 0;
      const expectedTotal = (last ? BigInt(last.total) : 0n) + record.amount;
      if (Number(record.index) !== expectedIndex || (last && Number(record.t0) !== last.t1) || record.total !== expectedTotal) {
        throw new Error(
          `usage record ${record.index} of lease ${leaseId} does not follow record ${last?.seq ?? 'none'} (t1 ${last?.t1 ?? '-'}, t0 ${record.t0}, total ${record.total})`,
        );
      }
      this.db
        .prepare(
          `INSERT INTO usage_records (lease_id, seq, t0, t1, cpu_millis, memory_byte_seconds, gpu_millis, rx_bytes, tx_bytes, amount, total)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          leaseId,
          Number(record.index),
          Number(record.t0),
          Number(record.t1),
          record.cpuMillis.toString(),
          record.memoryByteSeconds.toString(),
          record.gpuMillis.toString(),
          record.rxBytes.toString(),
          record.txBytes.toString(),
          record.amount.toString(),
          record.total.toString(),
        );
      const insertGpu = this.db.prepare(
        `INSERT INTO usage_gpu_readings (lease_id, seq, uuid, parent_uuid, at, utilization, memory_used_bytes, memory_total_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const gpu of gpus) {
        insertGpu.run(leaseId, Number(record.index), gpu.uuid, gpu.parentUuid, Number(record.t1), gpu.utilization, gpu.memoryUsedBytes, gpu.memoryTotalBytes);
      }
      this.db.prepare('UPDATE leases SET timeline_json = ? WHERE lease_id = ?').run(toJson(timeline), leaseId);
    })();
  }

  /** A lease's usage records by index (the `seq` column). */
  forLease(leaseId: string): UsageRecord[] {
    return (this.db.prepare('SELECT * FROM usage_records WHERE lease_id = ? ORDER BY seq').all(leaseId) as UsageRow[]).map(recordFromRow);
  }

  /** A lease's last usage record: its index and running total are what the next one follows. */
  last(leaseId: string): UsageRecord | undefined {
    const row = this.db.prepare('SELECT * FROM usage_records WHERE lease_id = ? ORDER BY seq DESC LIMIT 1').get(leaseId) as UsageRow | undefined;
    return row && recordFromRow(row);
  }

  /** A lease's GPU readings, by record and UUID. */
  gpuForLease(leaseId: string): GpuUsageReading[] {
    const rows = this.db
      .prepare('SELECT seq, at, uuid, parent_uuid, utilization, memory_used_bytes, memory_total_bytes FROM usage_gpu_readings WHERE lease_id = ? ORDER BY seq, uuid')
      .all(leaseId) as GpuRow[];
    return rows.map(gpuFromRow);
  }

  /** The latest reading of each GPU the lease holds (of its last record that has readings). */
  latestGpu(leaseId: string): GpuUsageReading[] {
    const rows = this.db
      .prepare(
        `SELECT seq, at, uuid, parent_uuid, utilization, memory_used_bytes, memory_total_bytes FROM usage_gpu_readings
         WHERE lease_id = ? AND seq = (SELECT MAX(seq) FROM usage_gpu_readings WHERE lease_id = ?) ORDER BY uuid`,
      )
      .all(leaseId, leaseId) as GpuRow[];
    return rows.map(gpuFromRow);
  }
}

function gpuFromRow(r: GpuRow): GpuUsageReading {
  return {
    seq: r.seq,
    at: r.at,
    uuid: r.uuid,
    parentUuid: r.parent_uuid,
    utilization: r.utilization,
    memoryUsedBytes: r.memory_used_bytes,
    memoryTotalBytes: r.memory_total_bytes,
  };
}

function recordFromRow(r: UsageRow): UsageRecord {
  return {
    leaseId: BigInt(r.lease_id),
    index: BigInt(r.seq),
    t0: BigInt(r.t0),
    t1: BigInt(r.t1),
    cpuMillis: BigInt(r.cpu_millis),
    memoryByteSeconds: BigInt(r.memory_byte_seconds),
    gpuMillis: BigInt(r.gpu_millis),
    rxBytes: BigInt(r.rx_bytes),
    txBytes: BigInt(r.tx_bytes),
    amount: BigInt(r.amount),
    total: BigInt(r.total),
  };
}
