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
