import { usageTree, type LeaseTerms, type UsageRecord } from '../chain';
import type { MarketplaceContract } from '../chain';
import type { LeaseOnChain, UsageEvidence } from './verify';

/** What TenantClient.dispute found: nothing to dispute (the usage view verifies), or the dispute it filed. */
export type DisputeOutcome =
  | { filed: false; checkpoint: number; records: number; total: bigint }
  | { filed: true; checkpoint: number; fault: string; evidence: 'equivocation' | 'record' | 'pair'; txHash: string };

/**
 * Why the contract would refuse a record dispute against the checkpoint whose EIP-712 digest is
 * `digest` at chain time `now` (MarketplaceV2._disputable), or undefined: such a dispute needs
 * that checkpoint to be the lease's pending claim, inside its challenge window.
 */
export function claimNotDisputable(chain: LeaseOnChain, digest: string, now: bigint): string | undefined {
  if (chain.end === 0n) return 'the lease is settled';
  if (chain.payableAt === 0n) return 'the provider has not claimed it on-chain';
  if (chain.claimDigest.toLowerCase() !== digest.toLowerCase()) return 'the pending claim is another checkpoint';
  if (now >= chain.payableAt) return `its challenge window closed at ${chain.payableAt}`;
  return undefined;
}

/**
 * The calldata of the dispute a refused usage view supports (docs/settlement-v2.md, "Disputes"):
 * equivocation from two signed checkpoints; a record or a pair of records proven against the
 * pending claim's root. Undefined when the evidence is a record not served (nothing on-chain
 * disproves that; the tenant just does not countersign).
 */
export function disputeCalldata(
  marketplace: MarketplaceContract,
  terms: LeaseTerms,
  evidence: UsageEvidence,
  served: readonly { record: UsageRecord; proof: string[] }[],
): { data: string; what: string } | undefined {
  if (evidence.kind === 'equivocation') {
    const signed = (v: typeof evidence.a) => ({ checkpoint: v.checkpoint, signature: v.providerSignature });
    return { data: marketplace.encode('disputeEquivocation', [terms, signed(evidence.a), signed(evidence.b)]), what: 'Equivocation' };
  }
  const { dispute, checkpoint } = evidence;
  if (dispute.kind === 'missing') return undefined;
  const proven = (record: UsageRecord) => ({ record, proof: proofOf(record, served) });
  const cp = checkpoint.checkpoint;
  if (dispute.kind === 'record') {
    return { data: marketplace.encode('disputeRecord', [terms, cp, proven(dispute.record)]), what: dispute.fault };
  }
  return { data: marketplace.encode('disputeRecordPair', [terms, cp, proven(dispute.a), proven(dispute.b)]), what: dispute.fault };
}

/** The proof served with a record (each was checked against the checkpoint's root), else one built from the served records. */
function proofOf(record: UsageRecord, served: readonly { record: UsageRecord; proof: string[] }[]): string[] {
  const found = served.find((s) => s.record === record);
  if (found) return found.proof;
  const tree = usageTree(served.map((s) => s.record));
  return tree.getProof(served.findIndex((s) => s.record.index === record.index));
}
