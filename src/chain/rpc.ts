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
