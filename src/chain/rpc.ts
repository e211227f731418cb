import { redactUrl } from '../config';
import { JsonRpcProvider, Network, WebSocketProvider } from 'ethers';

export interface RpcOptions {
  chainId: number | bigint;
  pollingIntervalMs?: number;
}

/**
 * A JSON-RPC provider configured for a daemon rather than a dapp: the chain id is given (no
 * network detection loop that logs forever while the RPC is down), ethers' 250 ms request cache
 * is off (it would hand back a stale nonce or block number), and requests are not batched (one
 * failing call must not fail its neighbours).
 */
export function createRpcProvider(url: string, options: RpcOptions): JsonRpcProvider {
  const network = Network.from(Number(options.chainId));
  return new JsonRpcProvider(url, network, {
    staticNetwork: network,
    cacheTimeout: -1,
    batchMaxCount: 1,
    pollingInterval: options.pollingIntervalMs ?? 1_000,
  });
}

export function createWsProvider(url: string, options: RpcOptions): WebSocketProvider {
  const network = Network.from(Number(options.chainId));
  return new WebSocketProvider(url, network, { staticNetwork: network, cacheTimeout: -1 });
}

const URL_IN_TEXT = /\b(?:https?|wss?):\/\/[^\s"'<>)]+/gi;

/**
 * One line about an RPC failure, safe to log: ethers puts the request URL (which may carry an
 * API key) and the response body into `message`, so only its `shortMessage` and `code` are used,
 * and any URL left in the text is cut down to scheme and host.
 */
export function describeRpcError(err: unknown): string {
  const e = err as { shortMessage?: unknown; code?: unknown; message?: unknown } | null | undefined;
  const short = typeof e?.shortMessage === 'string' ? e.shortMessage : undefined;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const text = short ?? (typeof e?.message === 'string' ? e.message.split('\n')[0] ?? '' : String(err));
  const withCode = code && short ? `${text} (${code})` : text;
  return withCode.replace(URL_IN_TEXT, (url) => redactUrl(url));
}

/** A node's answer when a call or estimate would revert: the contract refuses it. */
export function isRevert(err: unknown): boolean {
  return (err as { code?: string }).code === 'CALL_EXCEPTION';
}

/** What a node's refusal of a raw transaction says about the transaction. */
export type BroadcastRefusal =
  /** The node has it already, or something with its nonce is mined. */
  | 'known'
  /** Its fees are too low to enter the pool, or to replace the transaction there with its nonce. */
  | 'underpriced'
  /** The node will not take it as it is: it reverts, its gas is wrong, the sender cannot pay for it. */
  | 'refused'
  | 'other';

export function classifyBroadcastError(err: unknown): BroadcastRefusal {
  const text = errorText(err);
  if (/already known|known transaction|already imported|nonce too low|NONCE_EXPIRED|already in (the )?mempool/i.test(text)) return 'known';
  if (/underpriced|REPLACEMENT_UNDERPRICED|fee too low|less than (block )?base ?fee/i.test(text)) return 'underpriced';
  if (isRevert(err) || /insufficient funds|INSUFFICIENT_FUNDS|exceeds block gas limit|intrinsic gas/i.test(text)) return 'refused';
  return 'other';
}

/** Nodes and ethers word the same refusal differently and in different places: all of them, for matching. */
function errorText(err: unknown): string {
  const e = err as { code?: string; shortMessage?: string; message?: string; info?: { error?: { message?: string } }; error?: { message?: string } };
  return [e.code, e.shortMessage, e.info?.error?.message, e.error?.message, e.message].filter(Boolean).join(' | ');
}
