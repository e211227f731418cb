import type { Signer, TypedDataDomain } from 'ethers';
import type { CheckpointView, UsageView } from '../../src/api';
import { checkpointOf, nextRecord, signCheckpoint, type MeteredUsage, type Rates, type UsageRecord } from '../../src/chain';
import { usageProofs } from '../../src/settlement';

/** What was measured, as an honest meter records it: each next record indexed, priced and totalled (nextRecord). */
export function recordsOf(leaseId: bigint, rates: Rates, usage: readonly MeteredUsage[]): UsageRecord[] {
  const records: UsageRecord[] = [];
  for (const measured of usage) records.push(nextRecord(leaseId, records.at(-1), rates, measured));
  return records;
}

/**
 * A usage view as the daemon serves it (ProviderService.usage): a checkpoint over the first
 * `count` records for each count in `checkpointAfter` (checkpointOf, numbered from 1), each signed
 * by `provider`, and the records the latest one covers with their proofs against its root.
 */
export async function signedUsageView(
  provider: Signer,
  domain: TypedDataDomain,
  leaseId: bigint,
  rates: Rates,
  records: readonly UsageRecord[],
  checkpointAfter: readonly number[] = [records.length],
): Promise<UsageView> {
  const checkpoints: CheckpointView[] = [];
  for (const [i, count] of checkpointAfter.entries()) {
    const checkpoint = checkpointOf(leaseId, records.slice(0, count));
    checkpoints.push({ seq: i + 1, checkpoint, providerSignature: await signCheckpoint(provider, domain, checkpoint), tenantSignature: null, status: 'signed' });
  }
  const covered = Number(checkpoints.at(-1)?.checkpoint.recordCount ?? 0n);
  return { leaseId: leaseId.toString(), rates, records: usageProofs(records.slice(0, covered)), checkpoints, gpus: [] };
}
