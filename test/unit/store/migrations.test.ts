import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../../src/store';
import { migrate, openDatabase } from '../../../src/store/database';
import { MIGRATIONS } from '../../../src/store/migrations';
import { isProviderError } from '../../../src/errors';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'provider-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('store', () => {
  it('opens in WAL mode and applies each migration once, in order', () => {
    const db = openDatabase(join(dir, 'a.sqlite'));
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const order: number[] = [];
    const migrations = [
      { id: 2, name: 'second', up: () => order.push(2) },
      { id: 1, name: 'first', up: 'CREATE TABLE t (x INTEGER)' },
    ];
    expect(migrate(db, migrations)).toEqual([1, 2]);
    expect(migrate(db, migrations)).toEqual([]);
    expect(migrate(db, [...migrations, { id: 3, name: 'third', up: 'ALTER TABLE t ADD COLUMN y TEXT' }])).toEqual([3]);
    expect(order).toEqual([2]);
    db.close();
  });

  it('rolls back a failing migration and names it', () => {
    const db = openDatabase(join(dir, 'b.sqlite'));
    let error: unknown;
    try {
      migrate(db, [{ id: 1, name: 'broken', up: 'CREATE TABLE ok (x); NOT SQL' }]);
    } catch (err) {
      error = err;
    }
    expect(isProviderError(error, 'STORE_MIGRATION_FAILED')).toBe(true);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'ok'").get()).toBeUndefined();
    db.close();
  });

  it('keeps outbox intents by key and cursors across reopen', () => {
    const path = join(dir, 'c.sqlite');
    let store = openStore(path);
    const outbox = store.outbox;
    const first = outbox.enqueue({ key: 'claim:1:1', sender: '0xAbC', chainId: 1, to: '0x1', data: '0x' }, 1);
    const again = outbox.enqueue({ key: 'claim:1:1', sender: '0xabc', chainId: 1, to: '0x1', data: '0x' }, 2);
    expect(again.id).toBe(first.id);
    store.cursors.set('m', { blockNumber: 7, blockHash: '0xh' }, 3);
    store.close();
    store = openStore(path);
    expect(store.outbox.nextOpen('0xABC', 1)?.key).toBe('claim:1:1');
    expect(store.cursors.get('m')).toEqual({ blockNumber: 7, blockHash: '0xh' });
    expect(MIGRATIONS.length).toBeGreaterThan(0);
    store.close();
  });
});
