import type { JsonRpcProvider } from 'ethers';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { OutboxRepository } from '../store';
import { Backoff, sleep } from './backoff';
import { EventFollower, type EventHandler, type FollowerStore } from './event-follower';
import { marketplaceAt, type MarketplaceContract } from './marketplace';
import { createRpcProvider, describeRpcError } from './rpc';
import type { SenderPolicy } from './sender-policy';
import { TransactionSender, type TxSigner } from './transaction-sender';

/** The `network` config section, or the devnet's equivalent. */
export interface ChainSettings {
  rpcUrl: string;
  wsUrl?: string;
  chainId: number;
  marketplaceAddress: string;
  tokenAddress?: string;
  confirmations: number;
  pollIntervalMs: number;
  startBlock: number;
}

/** What the chain client keeps in the store: its transaction outbox, and its followers' cursors. */
export interface ChainStore extends FollowerStore {
  readonly outbox: OutboxRepository;
}

export interface ChainClientDeps {
  signer: TxSigner;
  store: ChainStore;
  clock: Clock;
  log: Logger;
  senderPolicy?: Partial<SenderPolicy>;
}

/**
 * The daemon's one door to the chain: a JSON-RPC connection, the typed marketplace binding, the
 * transaction sender for the provider's key, and event followers. The daemon builds one and
 * passes it down; `stop()` ends every loop.
 */
export class ChainClient {
  readonly rpc: JsonRpcProvider;
  readonly marketplace: MarketplaceContract;
  readonly sender: TransactionSender;
  private readonly followers: EventFollower[] = [];

  constructor(
    readonly settings: ChainSettings,
    private readonly deps: ChainClientDeps,
  ) {
    this.rpc = createRpcProvider(settings.rpcUrl, { chainId: settings.chainId, pollingIntervalMs: settings.pollIntervalMs });
    this.marketplace = marketplaceAt(settings.marketplaceAddress, this.rpc);
    this.sender = new TransactionSender({
      rpc: this.rpc,
      signer: deps.signer,
      chainId: settings.chainId,
      outbox: deps.store.outbox,
      clock: deps.clock,
      log: deps.log.child({ component: 'tx-sender' }),
      policy: { confirmations: settings.confirmations, receiptPollMs: Math.min(settings.pollIntervalMs, 2_000), ...deps.senderPolicy },
      describeRevert: (data) => this.marketplace.describeRevert(data),
    });
  }

  /**
   * Waits until the RPC answers (retrying with backoff, saying so) and checks it serves the
   * configured chain and that the marketplace has code there. A wrong chain is fatal; an
   * unreachable one is not.
   */
  async verify(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    const { signal, timeoutMs } = options;
    const backoff = new Backoff();
    const deadline = timeoutMs === undefined ? Infinity : this.deps.clock.now() + timeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      try {
        const chainId = Number(BigInt((await this.rpc.send('eth_chainId', [])) as string));
        if (chainId !== this.settings.chainId) {
          throw new ProviderError('CHAIN_ID_MISMATCH', `the RPC serves chain ${chainId}, the config says ${this.settings.chainId}`, {
            input: 'network.chainId',
            fix: 'point network.rpcUrl at the intended chain or correct network.chainId',
          });
        }
        const code = await this.rpc.getCode(this.settings.marketplaceAddress);
        if (code === '0x') {
          throw new ProviderError('CHAIN_ID_MISMATCH', `no contract at network.marketplaceAddress ${this.settings.marketplaceAddress} on chain ${chainId}`, {
            input: 'network.marketplaceAddress',
            fix: 'set network.marketplaceAddress to the marketplace deployed on this chain',
          });
        }
        return;
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        if (this.deps.clock.now() >= deadline) {
          throw new ProviderError('RPC_UNAVAILABLE', `the chain RPC did not answer within ${timeoutMs} ms: ${describeRpcError(err)}`, {
            input: 'network.rpcUrl',
            cause: err,
            fix: 'check network.rpcUrl and that the node is up and reachable from this host',
          });
        }
        const delay = backoff.next();
        this.deps.log.warn({ err: describeRpcError(err), retryInMs: delay }, 'waiting for the chain RPC to answer');
        await sleep(delay, signal);
      }
    }
  }

  /** A follower of marketplace events from the stored cursor `name`; call `start()` on it. */
  follow(name: string, handler: EventHandler): EventFollower {
    const follower = new EventFollower({
      name,
      rpc: this.rpc,
      wsUrl: this.settings.wsUrl,
      contract: this.marketplace,
      store: this.deps.store,
      handler,
      startBlock: this.settings.startBlock,
      confirmations: this.settings.confirmations,
      pollIntervalMs: this.settings.pollIntervalMs,
      clock: this.deps.clock,
      log: this.deps.log.child({ component: `follower:${name}` }),
    });
    this.followers.push(follower);
    return follower;
  }

  start(signal?: AbortSignal): void {
    this.sender.start(signal);
    for (const follower of this.followers) follower.start(signal);
  }

  async stop(): Promise<void> {
    await Promise.all([this.sender.stop(), ...this.followers.map((f) => f.stop())]);
    this.rpc.destroy();
  }
}
