import { createHash } from 'node:crypto';
import { AbiCoder, keccak256 } from 'ethers';
import { usageTree, type UsageRecord } from '../chain';

/**
 * The final checkpoint's resultDigest commits to how the workload ended and what it printed:
 *
 *   logsSha256   = SHA-256 over every log line, in the engine's order, each encoded in UTF-8 as
 *                  `<stream> "\t" <text> "\n"` with stream `stdout` or `stderr` (timestamps left out:
 *                  they are the engine's, not the workload's output)
 *   resultDigest = keccak256(abi.encode(int256 exitCode, bytes32 logsSha256))
 *
 * exitCode is -1 when there is none (the container vanished, never started, or was still running
 * when the lease ended without an exit). A tenant recomputes both from the streamed logs.
 */
export function resultDigest(exitCode: number | null, logsSha256: string): string {
  return keccak256(AbiCoder.defaultAbiCoder().encode(['int256', 'bytes32'], [BigInt(exitCode ?? -1), logsSha256]));
}

/** Incremental SHA-256 of log lines in the resultDigest encoding. */
export class LogDigest {
  private readonly hash = createHash('sha256');

  add(stream: 'stdout' | 'stderr', text: string): void {
    this.hash.update(`${stream}\t${text}\n`, 'utf8');
  }

  digest(): string {
    return `0x${this.hash.digest('hex')}`;
  }
}

export const EMPTY_LOGS_SHA256 = `0x${createHash('sha256').digest('hex')}`;

/** Each record with its proof against the tree over `records` (what the tenant verifies). */
export function usageProofs(records: readonly UsageRecord[]): { record: UsageRecord; proof: string[] }[] {
  if (records.length === 0) return [];
  const tree = usageTree(records);
  return records.map((record, i) => ({ record, proof: tree.getProof(i) }));
}
