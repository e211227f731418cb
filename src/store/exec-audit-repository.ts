import type { Db } from './database';

export interface ExecSessionStart {
  leaseId: string;
  tenant: string;
  remoteAddress: string | null;
  command: string[];
  tty: boolean;
  /** Unix seconds. */
  startedAt: number;
}

export interface ExecSessionRecord extends ExecSessionStart {
  id: number;
  endedAt: number | null;
  exitCode: number | null;
  /** exited: the process ended; closed: the tenant went away first; failed: the engine did (with the code); null while it runs. */
  outcome: string | null;
}

interface Row {
  id: number;
  lease_id: string;
  tenant: string;
  remote_address: string | null;
  command_json: string;
  tty: number;
  started_at: number;
  ended_at: number | null;
  exit_code: number | null;
  outcome: string | null;
}

/**
 * Every shell a tenant opened into a lease: who, from where, which command, when, how it ended.
 * What was typed into it is never kept (it may hold the tenant's secrets).
 */
export class ExecAuditRepository {
  constructor(private readonly db: Db) {}

  /** Records a session as it starts; returns its id for `end`. */
  start(session: ExecSessionStart): number {
    const result = this.db
      .prepare('INSERT INTO exec_sessions (lease_id, tenant, remote_address, command_json, tty, started_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(session.leaseId, session.tenant, session.remoteAddress, JSON.stringify(session.command), session.tty ? 1 : 0, session.startedAt);
    return Number(result.lastInsertRowid);
  }

  end(id: number, endedAt: number, exitCode: number | null, outcome: string): void {
    this.db.prepare('UPDATE exec_sessions SET ended_at = ?, exit_code = ?, outcome = ? WHERE id = ? AND ended_at IS NULL').run(endedAt, exitCode, outcome, id);
  }

  /** Sessions a crash left open: ended now with outcome `interrupted` (the daemon went away under them). */
  closeInterrupted(now: number): number {
    return this.db.prepare("UPDATE exec_sessions SET ended_at = ?, outcome = 'interrupted' WHERE ended_at IS NULL").run(now).changes;
  }

  forLease(leaseId: string): ExecSessionRecord[] {
    const rows = this.db.prepare('SELECT * FROM exec_sessions WHERE lease_id = ? ORDER BY id').all(leaseId) as Row[];
    return rows.map((row) => ({
      id: row.id,
      leaseId: row.lease_id,
      tenant: row.tenant,
      remoteAddress: row.remote_address,
      command: JSON.parse(row.command_json) as string[],
      tty: row.tty === 1,
      startedAt: row.started_at,
      endedAt: row.ended_at,
      exitCode: row.exit_code,
      outcome: row.outcome,
    }));
  }
}
