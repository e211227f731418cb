import type { ChainClient } from '../chain';
import type { Clock } from '../util/clock';

/**
 * The timestamp of the follower's cursor block, cached per block. When the follower has handled
 * the chain's head (no confirmations, as on an automining devnet) nothing is unseen, and any
 * close still to come will be stamped later than now: then it is the local time.
 */
export function confirmedChainTime(chain: ChainClient, cursor: () => number | undefined, clock: Clock): () => Promise<number | undefined> {
  let cached: { block: number; time: number } | undefined;
  let head: { at: number; block: number } | undefined;
  return async () => {
    const block = cursor();
    if (block === undefined) return undefined;
    if (chain.settings.confirmations === 0) {
      if (!head || clock.now() - head.at > 500) head = { at: clock.now(), block: await chain.rpc.getBlockNumber() };
      if (head.block <= block) return Math.floor(clock.now() / 1000);
    }
    if (cached?.block !== block) {
      const found = await chain.rpc.getBlock(block);
      if (!found) return cached?.time;
      cached = { block, time: found.timestamp };
    }
    return cached.time;
  };
}
