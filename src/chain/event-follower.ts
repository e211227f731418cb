import WebSocket from 'ws';
import type { JsonRpcProvider, Log } from 'ethers';
import { isProviderError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { CursorRepository } from '../store';
import { Backoff, Wakeup, sleep, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff';
import { decodeMarketplaceLog, type MarketplaceEvent } from './events';
import type { MarketplaceContract } from './marketplace';
import { describeRpcError } from './rpc';

/**
 * Called with each batch of confirmed events, in chain order, inside the SQLite transaction that
 * also advances the cursor: whatever the handler writes to the store commits together with the
 * cursor, or not at all. That is what makes delivery exactly-once across crashes. It must be
 * synchronous (better-sqlite3 transactions are) and must not have effects outside the store;
 * the lease engine persists what to do and does it after.
 */
export type EventHandler = (events: readonly MarketplaceEvent[], range: { fromBlock: number; toBlock: number }) => void;

/** Where a follower keeps its cursor, and the transaction a batch of events commits in with it. */
export interface FollowerStore {
  readonly cursors: CursorRepository;
  transaction<T>(fn: () => T): T;
}

export interface EventFollowerOptions {
  /** Cursor name in the store; one per follower. */
  name: string;
  rpc: JsonRpcProvider;
  /** WebSocket endpoint for new-head notifications; without it the follower only polls. */
  wsUrl?: string;
  contract: MarketplaceContract;
  store: FollowerStore;
  handler: EventHandler;
  /** First block to read when the store has no cursor yet. */
  startBlock: number;
  /** Only blocks at least this deep are processed, so a shallower reorg never reaches the handler. */
  confirmations: number;
  pollIntervalMs: number;
  /** Most blocks asked for in one eth_getLogs (RPC providers cap it). */
  maxBlockRange?: number;
  backoff?: BackoffPolicy;
  clock: Clock;
  log: Logger;
}

/**
 * Follows the marketplace's events: backfills from the stored cursor, then keeps up, woken by a
 * WebSocket new-heads subscription when there is one and by a poll timer always. It reads only
 * blocks `confirmations` deep, checks on every round that the cursor's block is still on the
 * chain, and never gives up on an RPC outage.
 */
export class EventFollower {
  private readonly wakeup = new Wakeup();
  private readonly backoff: Backoff;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private heads: HeadSubscription | undefined;

  constructor(private readonly options: EventFollowerOptions) {
    this.backoff = new Backoff(options.backoff ?? DEFAULT_BACKOFF);
  }

  start(signal?: AbortSignal): void {
    if (this.loop) return;
    const controller = new AbortController();
    this.controller = controller;
    const onAbort = (): void => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (this.options.wsUrl) {
      this.heads = new HeadSubscription(this.options.wsUrl, () => this.wakeup.wake(), this.options.log);
      this.heads.start();
    }
    this.loop = this.run(controller.signal).finally(() => signal?.removeEventListener('abort', onAbort));
  }

  async stop(): Promise<void> {
    this.controller?.abort();
    this.heads?.stop();
    await this.loop;
    this.loop = undefined;
  }

  /** The last block fully handled, or undefined before the first batch. */
  cursor(): number | undefined {
    return this.options.store.cursors.get(this.options.name)?.blockNumber;
  }

  /** Runs rounds until the follower has handled every block now `confirmations` deep. For tests and start-up. */
  async catchUp(signal?: AbortSignal): Promise<void> {
    while ((await this.round(signal)) === 'more') {
      // keep going
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { log, name } = this.options;
    log.debug({ follower: name, from: this.cursor() ?? this.options.startBlock }, 'event follower started');
    while (!signal.aborted) {
      try {
        const result = await this.round(signal);
        if (this.backoff.attempts > 0) log.info({ follower: name }, 'chain RPC reachable again; following events');
        this.backoff.reset();
        if (result === 'idle') await this.wakeup.wait(this.options.pollIntervalMs, signal);
      } catch (err) {
        if (signal.aborted) break;
        const delay = this.backoff.next();
        const level = isProviderError(err) ? 'error' : 'warn';
        log[level]({ follower: name, err: describeRpcError(err), retryInMs: delay, attempt: this.backoff.attempts }, 'event follower round failed; retrying');
        await sleep(delay, signal).catch(() => undefined);
      }
    }
  }

  /** One batch: 'more' when it handled blocks and more are ready, 'idle' when caught up. */
  private async round(signal?: AbortSignal): Promise<'more' | 'idle'> {
    const { rpc, contract, store, name, confirmations, log } = this.options;
    const { cursors } = store;
    signal?.throwIfAborted();
    const stored = cursors.get(name);
    if (stored) await this.checkCursorBlock(stored.blockNumber, stored.blockHash);
    const head = await rpc.getBlockNumber();
    const safe = head - confirmations;
    const fromBlock = stored ? stored.blockNumber + 1 : this.options.startBlock;
    if (safe < fromBlock) return 'idle';
    const toBlock = Math.min(safe, fromBlock + (this.options.maxBlockRange ?? 2_000) - 1);

    const logs: Log[] = await rpc.getLogs({ address: contract.address, fromBlock, toBlock });
    const block = await rpc.getBlock(toBlock);
    if (!block?.hash) throw new Error(`block ${toBlock} not found`);
    signal?.throwIfAborted();

    const events: MarketplaceEvent[] = [];
    for (const entry of [...logs].sort((a, b) => a.blockNumber - b.blockNumber || a.index - b.index)) {
      if (entry.removed) continue;
      const event = decodeMarketplaceLog(contract, entry);
      if (event) events.push(event);
    }
    store.transaction(() => {
      this.options.handler(events, { fromBlock, toBlock });
      cursors.set(name, { blockNumber: toBlock, blockHash: block.hash! }, this.options.clock.now());
    });
    if (events.length > 0) log.debug({ follower: name, fromBlock, toBlock, events: events.length }, 'chain events handled');
    return toBlock < safe ? 'more' : 'idle';
  }

  private reportedReorgAt: number | undefined;

  /** A cursor block that is no longer on the chain means a reorg deeper than `confirmations`. */
  private async checkCursorBlock(blockNumber: number, blockHash: string): Promise<void> {
    const block = await this.options.rpc.getBlock(blockNumber);
    if (block?.hash === blockHash || this.reportedReorgAt === blockNumber) return;
    this.reportedReorgAt = blockNumber;
    if (!block) {
      this.options.log.error(
        { follower: this.options.name, blockNumber, code: 'REORG_TOO_DEEP' },
        'the chain is shorter than the stored event cursor: it was reset or replaced. Events resume once it passes the cursor',
      );
      return;
    }
    this.options.log.error(
      { follower: this.options.name, blockNumber, stored: blockHash, now: block.hash, code: 'REORG_TOO_DEEP' },
      'the chain reorganised below the confirmation depth; events already handled may have changed. Raise network.confirmations',
    );
  }
}

/**
 * eth_subscribe("newHeads") over a WebSocket, used only as a doorbell: each head wakes the
 * follower early. It reconnects with backoff forever; polling covers the gaps.
 */
class HeadSubscription {
  private socket: WebSocket | undefined;
  private stopped = false;
  private readonly backoff = new Backoff({ initialMs: 500, maxMs: 30_000 });
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly url: string,
    private readonly onHead: () => void,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.socket?.removeAllListeners();
    this.socket?.on('error', () => undefined);
    this.socket?.terminate();
    this.socket = undefined;
  }

  private connect(): void {
    if (this.stopped) return;
    const socket = new WebSocket(this.url, { handshakeTimeout: 5_000 });
    this.socket = socket;
    socket.on('open', () => {
      this.backoff.reset();
      socket.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_subscribe', params: ['newHeads'] }));
    });
    socket.on('message', (data) => {
      try {
        const message = JSON.parse(data.toString()) as { method?: string };
        if (message.method === 'eth_subscription') this.onHead();
      } catch {
        // not JSON: ignore
      }
    });
    socket.on('error', (err) => this.log.debug({ err: describeRpcError(err) }, 'new-heads WebSocket error'));
    socket.on('close', () => {
      if (this.stopped) return;
      const delay = this.backoff.next();
      this.timer = setTimeout(() => this.connect(), delay);
      this.timer.unref();
    });
  }
}
