import { getAddress, verifyTypedData, type TypedDataDomain } from 'ethers';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import {
  CHECKPOINT_TYPES,
  QUOTE_TYPES,
  USAGE_LEAF_ENCODING,
  ZERO_BYTES32,
  canonicalJson,
  ceilingRate,
  checkpointsConflict,
  findDispute,
  hashCheckpoint,
  hashQuote,
  manifestHash,
  payableTo,
  usageLeafValues,
  type DisputeEvidence,
  type LeaseTerms,
  type UsageRecord,
} from '../chain';
import type { CheckpointView, Offer, QuoteResponse, UsageView } from '../api';
import type { Manifest } from '../runtime';
import { QuoteUntrustedError, UsageUnverifiedError } from './errors';

/**
 * The tenant's checks, written from the protocol (contracts/MarketplaceV2.sol and src/chain's
 * protocol), not from the engine: pure functions over what the provider sent and what the
 * tenant knows, so every refusal is a table test.
 */

const GIB = 2n ** 30n;

export interface QuoteExpectations {
  domain: TypedDataDomain;
  /** The provider we asked: its address from the offer, checked against its registration. */
  provider: string;
  tenant: string;
  /** The manifest as sent (schema-normalised). */
  manifest: Manifest;
  /** Unix seconds. */
  now: number;
  /** The offer's rate card: no quoted unit rate may exceed it. */
  rateCard?: Offer['rateCard'];
  /** The most the tenant accepts to risk per second (ceilingRate: rates × allocation, the unilateral claim's cap). */
  maxRatePerSecond?: bigint;
}

export function verifyQuote(response: QuoteResponse, expect: QuoteExpectations): void {
  const { quote } = response;
  const fail = (fault: ConstructorParameters<typeof QuoteUntrustedError>[0], message: string): never => {
    throw new QuoteUntrustedError(fault, message);
  };
  if (getAddress(quote.provider) !== getAddress(expect.provider)) fail('wrong-provider', `quote names provider ${quote.provider}, we asked ${expect.provider}`);
  let signer: string | undefined;
  try {
    signer = verifyTypedData(expect.domain, QUOTE_TYPES, quote, response.signature);
  } catch {
    signer = undefined;
  }
  if (signer !== getAddress(expect.provider)) fail('bad-signature', `quote signature recovers to ${signer ?? 'nothing'}, not ${expect.provider}`);
  if (hashQuote(expect.domain, quote) !== response.quoteHash) fail('quote-hash', 'quoteHash is not the EIP-712 hash of the quote');
  const expectedHash = manifestHash(expect.manifest);
  if (quote.manifestHash !== expectedHash) fail('manifest-hash', `quote is for manifest ${quote.manifestHash}, we sent ${expectedHash}`);
  if (getAddress(quote.tenant) !== getAddress(expect.tenant)) fail('other-tenant', `quote is for tenant ${quote.tenant}, we are ${expect.tenant}`);
  if (quote.expiresAt <= BigInt(expect.now)) fail('expired', `quote expired at ${quote.expiresAt}, it is ${expect.now}`);
  if (quote.maxDuration < 1n || quote.maxDuration > BigInt(expect.manifest.maxDurationSeconds)) {
    fail('duration', `maxDuration ${quote.maxDuration}s is outside 1..${expect.manifest.maxDurationSeconds}s asked`);
  }
  // The allocation bounds what every record may bill: it must be what we asked, no more.
  const { allocation } = quote;
  const resources = expect.manifest.resources;
  if (allocation.cpuMillicores !== BigInt(resources.cpuMillis) || allocation.gpuCount !== BigInt(resources.gpus.count)) {
    fail('allocation', `allocation ${allocation.cpuMillicores} millicores / ${allocation.gpuCount} GPUs is not the ${resources.cpuMillis} / ${resources.gpus.count} asked`);
  }
  if (expect.manifest.egress === 'none' && allocation.egressBytesPerSecond !== 0n) fail('allocation', 'the allocation grants egress to a lease that asked for none');
  if (expect.maxRatePerSecond !== undefined && ceilingRate(quote.rates, allocation) > expect.maxRatePerSecond) {
    fail('rates', `the most a second can cost, ${ceilingRate(quote.rates, allocation)}, is above the ${expect.maxRatePerSecond} we accept`);
  }
  if (expect.rateCard) {
    const card = expect.rateCard;
    const rates = quote.rates;
    const gpuCard = expect.manifest.resources.gpus.model
      ? BigInt(card.perGpuSecondByModel[expect.manifest.resources.gpus.model] ?? card.perGpuSecond)
      : [card.perGpuSecond, ...Object.values(card.perGpuSecondByModel)].map(BigInt).reduce((a, b) => (a > b ? a : b));
    // perSecond carries the lease rate, the memory reservation and at most the whole minimum.
    const memory = (BigInt(card.perGiBMemorySecond) * BigInt(expect.manifest.resources.memoryBytes) + GIB - 1n) / GIB;
    const perSecondCeiling = BigInt(card.perLeaseSecond) + memory + BigInt(card.minimumPerLease);
    const above: string[] = [];
    if (rates.perCpuSecond > BigInt(card.perCpuSecond)) above.push(`perCpuSecond ${rates.perCpuSecond} > ${card.perCpuSecond}`);
    if (rates.perGpuSecond > gpuCard) above.push(`perGpuSecond ${rates.perGpuSecond} > ${gpuCard}`);
    if (rates.perGiBEgress > BigInt(card.perGiBEgress)) above.push(`perGiBEgress ${rates.perGiBEgress} > ${card.perGiBEgress}`);
    if (rates.perSecond > perSecondCeiling) above.push(`perSecond ${rates.perSecond} > ${perSecondCeiling}`);
    if (above.length > 0) fail('rates', `rates above the offered card: ${above.join(', ')}`);
  }
}

/** What the chain holds for a lease (MarketplaceV2.getLease), with the terms the tenant kept from LeaseOpened. */
export interface LeaseOnChain {
  terms: LeaseTerms;
  /** startedAt + maxDuration, or when it was closed; 0 once settled. */
  end: bigint;
  paid: bigint;
  pending: bigint;
  payableAt: bigint;
  /** EIP-712 digest of the pending claim's checkpoint (zero when none). */
  claimDigest: string;
}

export interface UsageExpectations {
  domain: TypedDataDomain;
  provider: string;
  leaseId: bigint;
  /** The lease's terms as LeaseOpened announced them. */
  terms: LeaseTerms;
  chain?: LeaseOnChain;
}

export interface VerifiedUsage {
  latest: CheckpointView;
  total: bigint;
  /** End of the last record, unix seconds (0 with no record). */
  coveredUntil: bigint;
}

/**
 * The contract's rules over everything the provider served: each checkpoint signed by the
 * provider, no two of them conflicting (equivocation), every record proven in the latest
 * checkpoint's root, and every dispute condition (findDispute) checked against it. Accepted, the
 * latest checkpoint carries exactly its records' total (checkpointOf's rule), escrow exhausted or
 * not, and may be countersigned. Refused, the error carries the evidence a dispute files.
 */
export function verifyUsage(view: UsageView, expect: UsageExpectations): VerifiedUsage {
  const fail = (fault: ConstructorParameters<typeof UsageUnverifiedError>[0], message: string, seq?: bigint, evidence?: UsageEvidence): never => {
    throw new UsageUnverifiedError(fault, message, seq, evidence);
  };
  const { terms } = expect;
  if (view.leaseId !== expect.leaseId.toString()) fail('wrong-lease', `view is for lease ${view.leaseId}, we asked ${expect.leaseId}`);
  if (getAddress(terms.provider) !== getAddress(expect.provider)) fail('chain-mismatch', `lease is with ${terms.provider} on-chain, not ${expect.provider}`);
  if (canonicalJson(view.rates) !== canonicalJson(terms.rates)) fail('rates', 'rates differ from the ones the lease was opened with');
  if (view.checkpoints.length === 0) fail('no-checkpoint', 'no checkpoint to verify against');

  const checkpoints = [...view.checkpoints].sort((a, b) => a.seq - b.seq);
  for (const cpView of checkpoints) {
    const cp = cpView.checkpoint;
    if (cp.leaseId !== expect.leaseId) fail('wrong-lease', `checkpoint ${cpView.seq} is for lease ${cp.leaseId}`, BigInt(cpView.seq));
    let signer: string | undefined;
    try {
      signer = verifyTypedData(expect.domain, CHECKPOINT_TYPES, cp, cpView.providerSignature);
    } catch {
      signer = undefined;
    }
    if (signer !== getAddress(expect.provider)) fail('checkpoint-signature', `checkpoint ${cpView.seq} is not signed by ${expect.provider}`, BigInt(cpView.seq));
  }
  for (let i = 0; i < checkpoints.length; i += 1) {
    for (let j = i + 1; j < checkpoints.length; j += 1) {
      const [a, b] = [checkpoints[i] as CheckpointView, checkpoints[j] as CheckpointView];
      if (checkpointsConflict(terms, a.checkpoint, b.checkpoint)) {
        fail('equivocation', `checkpoints ${a.seq} and ${b.seq} cannot both be prefixes of one record sequence`, BigInt(b.seq), { kind: 'equivocation', a, b });
      }
    }
  }
  const latest = checkpoints[checkpoints.length - 1] as CheckpointView;
  const cp = latest.checkpoint;
  for (const { record, proof } of view.records) {
    if (!StandardMerkleTree.verify(cp.usageRoot, USAGE_LEAF_ENCODING, usageLeafValues(record), proof)) {
      fail('proof', `record ${record.index}'s proof does not reach the root of checkpoint ${latest.seq}`, record.index);
    }
  }
  const records = view.records.map((r) => r.record);
  const dispute = findDispute(terms, cp, records);
  if (dispute) {
    const message =
      dispute.kind === 'missing'
        ? `record ${dispute.index} of checkpoint ${latest.seq} was not served`
        : `checkpoint ${latest.seq}: ${dispute.fault}`;
    fail(dispute.kind === 'missing' ? 'missing-record' : 'disputable', message, BigInt(latest.seq), { kind: 'records', checkpoint: latest, dispute });
  }
  for (let i = 1; i < checkpoints.length; i += 1) {
    const [before, after] = [checkpoints[i - 1] as CheckpointView, checkpoints[i] as CheckpointView];
    // Only the latest is verified: an earlier one over more records could be claimed above it, unseen.
    if (after.checkpoint.recordCount < before.checkpoint.recordCount) {
      fail('checkpoint-order', `checkpoint ${after.seq} covers fewer records than checkpoint ${before.seq}`, BigInt(after.seq));
    }
    if (before.checkpoint.resultDigest !== ZERO_BYTES32) fail('checkpoint-order', `final checkpoint ${before.seq} is followed by checkpoint ${after.seq}`, BigInt(after.seq));
  }
  const chain = expect.chain;
  if (chain && chain.paid > payableTo(cp.cumulativeAmount, terms.deposit)) {
    fail('chain-mismatch', `chain paid ${chain.paid}, more than the ${cp.cumulativeAmount} shown`);
  }
  // A pending claim is disputed with the records of its own checkpoint: one the view hides leaves
  // the tenant nothing to check it against before it is paid.
  if (chain && BigInt(chain.claimDigest) !== 0n && !checkpoints.some((c) => hashCheckpoint(expect.domain, c.checkpoint) === chain.claimDigest.toLowerCase())) {
    fail('chain-mismatch', `the pending claim on-chain (${chain.claimDigest}) is for a checkpoint the view does not show`);
  }
  const last = records.reduce<UsageRecord | undefined>((m, r) => (m === undefined || r.index > m.index ? r : m), undefined);
  return { latest, total: cp.cumulativeAmount, coveredUntil: last ? last.t1 : 0n };
}

/** What a refused usage view holds against the provider: the dispute to file. */
export type UsageEvidence =
  | { kind: 'equivocation'; a: CheckpointView; b: CheckpointView }
  | { kind: 'records'; checkpoint: CheckpointView; dispute: DisputeEvidence };
