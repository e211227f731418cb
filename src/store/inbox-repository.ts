import type { Db } from './database';
import { fromJson, toJson } from './json';

export interface InboxEvent {
  id: number;
  name: string;
  leaseId: string | null;
  args: Record<string, unknown>;
  blockNumber: number;
  logIndex: number;
}

interface InboxRow {
  id: number;
  name: string;
  lease_id: string | null;
  args_json: string;
  block_number: number;
  log_index: number;
}

/** Marketplace events the event follower recorded and the lease engine has still to act on. */
export class InboxRepository {
  constructor(private readonly db: Db) {}

  /** Records a marketplace event for the lease engine; a replayed one (same log) is ignored. */
  add(event: Omit<InboxEvent, 'id'>): void {
    this.db
      .prepare('INSERT OR IGNORE INTO chain_inbox (name, lease_id, args_json, block_number, log_index) VALUES (?, ?, ?, ?, ?)')
      .run(event.name, event.leaseId, toJson(event.args), event.blockNumber, event.logIndex);
  }

  /** The events not handled yet, in chain order. */
  open(): InboxEvent[] {
    return (this.db.prepare('SELECT * FROM chain_inbox WHERE handled = 0 ORDER BY block_number, log_index').all() as InboxRow[]).map((r) => ({
      id: r.id,
      name: r.name,
      leaseId: r.lease_id,
      args: fromJson(r.args_json),
      blockNumber: r.block_number,
      logIndex: r.log_index,
    }));
  }

  markHandled(id: number): void {
    this.db.prepare('UPDATE chain_inbox SET handled = 1 WHERE id = ?').run(id);
  }
}
