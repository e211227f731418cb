import type { JsonRpcProvider } from 'ethers';
import { DEFAULT_BACKOFF, type BackoffPolicy } from './backoff';

export interface SenderPolicy {
  /** Blocks a receipt must be buried under (head >= block + confirmations) before it is final. */
  confirmations: number;
  /** How often to look for a receipt while a transaction is out. */
  receiptPollMs: number;
  /** Re-send the same signed transaction this often while it is not mined (a node may have dropped it). */
  rebroadcastMs: number;
  /** Replace the transaction with higher fees when it has not been mined for this long. */
  bumpAfterMs: number;
  /** Fee increase per replacement, in percent; nodes require at least 10. */
  bumpPercent: number;
  /** Never offer more than this per gas (base units of the native coin). */
  maxFeePerGasCap: bigint;
  /** Gas limit headroom over the estimate, in percent. */
  gasHeadroomPercent: number;
  backoff: BackoffPolicy;
}

export const DEFAULT_SENDER_POLICY: SenderPolicy = {
  confirmations: 2,
  receiptPollMs: 1_000,
  rebroadcastMs: 30_000,
  bumpAfterMs: 60_000,
  bumpPercent: 20,
  maxFeePerGasCap: 500n * 10n ** 9n,
  gasHeadroomPercent: 25,
  backoff: DEFAULT_BACKOFF,
};

export interface Fees {
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

export function gasLimitFor(estimate: bigint, policy: SenderPolicy): bigint {
  return (estimate * BigInt(100 + policy.gasHeadroomPercent)) / 100n;
}

/** What the network asks now, within the cap: twice the base fee plus the node's suggested tip. */
export async function currentFees(rpc: JsonRpcProvider, policy: SenderPolicy): Promise<Fees> {
  const block = await rpc.getBlock('latest');
  const baseFee = block?.baseFeePerGas ?? 0n;
  let priority = 10n ** 9n;
  try {
    const suggested = BigInt((await rpc.send('eth_maxPriorityFeePerGas', [])) as string);
    if (suggested > 0n) priority = suggested;
  } catch {
    // Not every node answers it; 1 gwei is a fair tip.
  }
  let maxFeePerGas = baseFee * 2n + priority;
  if (maxFeePerGas > policy.maxFeePerGasCap) maxFeePerGas = policy.maxFeePerGasCap;
  if (priority > maxFeePerGas) priority = maxFeePerGas;
  return { maxFeePerGas, maxPriorityFeePerGas: priority };
}

/**
 * The fees of a replacement: the previous ones raised by `bumpPercent` (nodes refuse a smaller
 * raise), or what the network asks now when that is more, within the cap. At the cap they are no
 * higher than the previous ones: there is nothing to replace with.
 */
export function replacementFees(previous: Fees, network: Fees, policy: SenderPolicy): Fees {
  const raise = (value: bigint): bigint => (value * BigInt(100 + policy.bumpPercent) + 99n) / 100n;
  let maxPriorityFeePerGas = raise(previous.maxPriorityFeePerGas);
  let maxFeePerGas = raise(previous.maxFeePerGas);
  if (network.maxFeePerGas > maxFeePerGas) maxFeePerGas = network.maxFeePerGas;
  if (network.maxPriorityFeePerGas > maxPriorityFeePerGas) maxPriorityFeePerGas = network.maxPriorityFeePerGas;
  if (maxFeePerGas > policy.maxFeePerGasCap) maxFeePerGas = policy.maxFeePerGasCap;
  if (maxPriorityFeePerGas > maxFeePerGas) maxPriorityFeePerGas = maxFeePerGas;
  return { maxFeePerGas, maxPriorityFeePerGas };
}
