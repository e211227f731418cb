import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventFollower, type EventHandler } from '../../../src/chain/event-follower';
import { marketplaceAt } from '../../../src/chain/marketplace';
import { createRpcProvider } from '../../../src/chain/rpc';
import type { MarketplaceEvent } from '../../../src/chain/events';
import { Store } from '../../../src/store';
import { migrate, openDatabase, type Db } from '../../../src/store/database';
import { MIGRATIONS } from '../../../src/store/migrations';
import { Writable } from 'node:stream';
import { createLogger, silentLogger, type Logger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { openV2, registerV2, send, startDualFixture, stopDualFixture, v2As, type DualFixture } from './v2/fixture-v2';
import { TcpProxy } from './tcp-proxy';
import { until as untilShared } from '../../support/until';

jest.setTimeout(60_000);

let fx: DualFixture;
let dir: string;

beforeAll(async () => {
  fx = await startDualFixture();
  await registerV2(fx);
  dir = mkdtempSync(join(tmpdir(), 'provider-follower-'));
});

afterAll(async () => {
  await stopDualFixture(fx);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function mine(blocks: number): Promise<void> {
  for (let i = 0; i < blocks; i++) await fx.rpc.send('evm_mine', []);
}

/**
 * A store whose handler records each event under a unique (blockHash, logIndex): a second delivery
 * fails the test. The table is in the store's own connection, so it commits with the cursor.
 */
function openSeenStore(file: string): Db {
  const db = openDatabase(join(dir, file));
  migrate(db, MIGRATIONS);
  db.exec(`CREATE TABLE IF NOT EXISTS seen (
    block_hash TEXT NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL, name TEXT NOT NULL,
    UNIQUE (block_hash, log_index))`);
  return db;
}

function recordingHandler(db: Db, hook?: (event: MarketplaceEvent) => void): EventHandler {
  const insert = db.prepare('INSERT INTO seen (block_hash, log_index, block_number, name) VALUES (?, ?, ?, ?)');
  return (events) => {
    for (const event of events) {
      insert.run(event.blockHash, event.logIndex, event.blockNumber, event.name);
      hook?.(event);
    }
  };
}

function seen(db: Db): { block_hash: string; log_index: number; name: string }[] {
  return db.prepare('SELECT block_hash, log_index, name FROM seen ORDER BY block_number, log_index').all() as never;
}

async function allConfirmedLogs(confirmations: number): Promise<{ block_hash: string; log_index: number }[]> {
  const head = await fx.rpc.getBlockNumber();
  const logs = await fx.rpc.getLogs({ address: fx.v2.target as string, fromBlock: 0, toBlock: head - confirmations });
  return logs.map((l) => ({ block_hash: l.blockHash, log_index: l.index }));
}

function follower(
  db: Db,
  options: { url?: string; wsUrl?: string; handler?: EventHandler; pollIntervalMs?: number; maxBlockRange?: number; log?: Logger } = {},
) {
  const rpc = createRpcProvider(options.url ?? fx.anvil.rpcUrl, { chainId: fx.chainId });
  const instance = new EventFollower({
    name: 'marketplace',
    rpc,
    wsUrl: options.wsUrl,
    contract: marketplaceAt(fx.v2.target as string, rpc),
    store: new Store(db),
    handler: options.handler ?? recordingHandler(db),
    startBlock: 0,
    confirmations: 2,
    pollIntervalMs: options.pollIntervalMs ?? 50,
    maxBlockRange: options.maxBlockRange,
    backoff: { initialMs: 50, maxMs: 300 },
    clock: systemClock,
    log: options.log ?? silentLogger(),
  });
  return {
    instance,
    stop: async () => {
      await instance.stop();
      rpc.destroy();
    },
  };
}

describe('EventFollower', () => {
  it('backfills, then after a restart replays what it missed from its cursor, each event exactly once', async () => {
    await openV2(fx);
    await openV2(fx);
    await mine(2);
    let db = openSeenStore('replay.sqlite');
    let f = follower(db, { maxBlockRange: 3 });
    f.instance.start();
    let expected = await allConfirmedLogs(2);
    await until('the backfill', () => seen(db).length === expected.length);
    expect(seen(db).map((r) => r.name)).toContain('LeaseOpened');
    await f.stop();
    db.close();

    // While it is down: more leases, a close, and blocks on top.
    const { leaseId, terms } = await openV2(fx);
    await openV2(fx);
    await send(v2As(fx, fx.tenant), 'closeLease', leaseId, terms);
    await mine(3);

    db = openSeenStore('replay.sqlite');
    f = follower(db);
    f.instance.start();
    expected = await allConfirmedLogs(2);
    await until('the replay', () => seen(db).length === expected.length);
    expect(seen(db).map(({ block_hash, log_index }) => ({ block_hash, log_index }))).toEqual(expected);
    expect(seen(db).filter((r) => r.name === 'LeaseClosed')).toHaveLength(1);
    await f.stop();
    db.close();
  });

  it('handles nothing shallower than the confirmation depth', async () => {
    const db = openSeenStore('depth.sqlite');
    const f = follower(db);
    await mine(2);
    await f.instance.catchUp();
    const before = seen(db).length;
    await openV2(fx);
    await f.instance.catchUp();
    expect(seen(db).length).toBe(before);
    await mine(2);
    await f.instance.catchUp();
    expect(seen(db).length).toBe(before + 1);
    await f.stop();
    db.close();
  });

  it('rolls back a batch whose handler fails, with its cursor, and delivers it once on retry', async () => {
    const db = openSeenStore('atomic.sqlite');
    let failures = 0;
    const record = recordingHandler(db);
    const handler: EventHandler = (events, range) => {
      record(events, range);
      if (events.some((e) => e.name === 'LeaseOpened') && failures < 2) {
        failures += 1;
        throw new Error('handler crashed half way');
      }
    };
    const f = follower(db, { handler });
    f.instance.start();
    const expected = await allConfirmedLogs(2);
    await until('delivery after the failures', () => seen(db).length === expected.length);
    expect(failures).toBe(2);
    await f.stop();
    db.close();
  });

  it('keeps following through an RPC outage', async () => {
    const proxy = await TcpProxy.start(fx.anvil.port);
    const db = openSeenStore('outage.sqlite');
    const f = follower(db, { url: proxy.url });
    f.instance.start();
    await mine(2);
    let expected = await allConfirmedLogs(2);
    await until('the backfill', () => seen(db).length === expected.length);
    await proxy.cut();
    await openV2(fx);
    await mine(2);
    await new Promise((r) => setTimeout(r, 500));
    await proxy.restore();
    expected = await allConfirmedLogs(2);
    await until('the events missed in the outage', () => seen(db).length === expected.length);
    await f.stop();
    await proxy.cut();
    db.close();
  });

  it('wakes on new heads over WebSocket without waiting for the poll timer', async () => {
    const db = openSeenStore('ws.sqlite');
    const f = follower(db, { wsUrl: fx.anvil.wsUrl, pollIntervalMs: 60_000 });
    await f.instance.catchUp();
    f.instance.start();
    await new Promise((r) => setTimeout(r, 300));
    const before = seen(db).length;
    await openV2(fx);
    await mine(2);
    await until('the WebSocket wake-up', () => seen(db).length === before + 1, 5_000);
    await f.stop();
    db.close();
  });

  it('never delivers an event from a block reorganised away before it was deep enough', async () => {
    const db = openSeenStore('reorg.sqlite');
    const f = follower(db);
    await mine(2);
    await f.instance.catchUp();
    await openV2(fx);
    const orphan = (await fx.rpc.getBlock('latest'))!.hash!;
    await f.instance.catchUp();
    // Replace the lease's block with an empty one, then bury the new chain.
    await fx.rpc.send('anvil_reorg', [1, []]);
    await fx.rpc.send('anvil_dropAllTransactions', []);
    expect((await fx.rpc.getBlock('latest'))!.hash).not.toBe(orphan);
    await mine(3);
    await f.instance.catchUp();
    expect(seen(db).some((r) => r.block_hash === orphan)).toBe(false);
    expect(seen(db).map(({ block_hash, log_index }) => ({ block_hash, log_index }))).toEqual(await allConfirmedLogs(2));
    await f.stop();
    db.close();
  });

  it('says so when the chain reorganises below the confirmation depth', async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const db = openSeenStore('deep-reorg.sqlite');
    const f = follower(db, { log: createLogger({ level: 'error', format: 'json', destination }) });
    await mine(3);
    await f.instance.catchUp();
    await fx.rpc.send('anvil_reorg', [4, []]);
    await f.instance.catchUp();
    expect(lines.join('')).toMatch(/REORG_TOO_DEEP/);
    await f.stop();
    db.close();
  });
});

function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<true> {
  return untilShared(what, async () => (await check()) || undefined, timeoutMs, 25);
}
