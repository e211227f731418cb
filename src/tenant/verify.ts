import { AbiCoder, getAddress, keccak256, verifyTypedData, type TypedDataDomain } from 'ethers';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import {
  CHECKPOINT_TYPES,
  QUOTE_TYPES,
  USAGE_LEAF_ENCODING,
  ZERO_BYTES32,
  hashQuote,
  manifestHash,
  usageAmount,
  usageLeafValues,
  usageTree,
  type Rates,
} from '../chain';
import type { CheckpointView, Offer, QuoteResponse, UsageView } from '../api';
import type { Manifest } from '../runtime';
import { QuoteUntrustedError, UsageUnverifiedError } from './errors';

/**
 * The tenant's checks, written from the protocol (contracts/Marketplace.sol and src/chain's
 * protocol), not from the engine: pure functions over what the provider sent and what the
 * tenant knows, so every refusal is a table test.
 */

const UINT128_MAX = 2n ** 128n - 1n;
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
  /** The most the tenant accepts to risk per second (the unilateral claim cap). */
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
  if (quote.maxRatePerSecond === 0n || quote.maxRatePerSecond > UINT128_MAX) fail('rates', `maxRatePerSecond ${quote.maxRatePerSecond} is out of range`);
  if (expect.maxRatePerSecond !== undefined && quote.maxRatePerSecond > expect.maxRatePerSecond) {
    fail('rates', `maxRatePerSecond ${quote.maxRatePerSecond} is above the ${expect.maxRatePerSecond} we accept`);
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

/** What the chain holds for a lease (Marketplace.getLease / getPendingClaim), when known. */
export interface LeaseOnChain {
  provider: string;
  tenant: string;
  startedAt: bigint;
  /** closedAt, else startedAt + maxDuration. */
  end: bigint;
  paid: bigint;
  ratesHash: string;
  pending: { cumulativeAmount: bigint; usageRoot: string; seq: bigint; periodEnd: bigint; payableAt: bigint } | null;
}

export interface UsageExpectations {
  domain: TypedDataDomain;
  provider: string;
  leaseId: bigint;
  chain?: LeaseOnChain;
}

export interface VerifiedUsage {
  latest: CheckpointView;
  total: bigint;
  /** End of the last record, unix seconds (0 with no record). */
  coveredUntil: bigint;
}

export function ratesHash(rates: Rates): string {
  return keccak256(AbiCoder.defaultAbiCoder().encode(['uint256', 'uint256', 'uint256', 'uint256'], [rates.perSecond, rates.perCpuSecond, rates.perGpuSecond, rates.perGiBEgress]));
}

/**
 * Every record priced by the lease's rates and contiguous with the one before; every checkpoint
 * signed by the provider and committing to a prefix of the records (root and cumulative amount);
 * the latest one to all of them, with each record's proof valid against its root; and, when the
 * chain's view is given, the same parties, rates and any pending claim as the chain.
 */
export function verifyUsage(view: UsageView, expect: UsageExpectations): VerifiedUsage {
  const fail = (fault: ConstructorParameters<typeof UsageUnverifiedError>[0], message: string, seq?: bigint): never => {
    throw new UsageUnverifiedError(fault, message, seq);
  };
  if (view.leaseId !== expect.leaseId.toString()) fail('wrong-lease', `view is for lease ${view.leaseId}, we asked ${expect.leaseId}`);
  const chain = expect.chain;
  if (chain) {
    if (getAddress(chain.provider) !== getAddress(expect.provider)) fail('chain-mismatch', `lease is with ${chain.provider} on-chain, not ${expect.provider}`);
    if (ratesHash(view.rates) !== chain.ratesHash) fail('rates', 'rates differ from the ones the lease was opened with');
  }

  const records = view.records.map((r) => r.record);
  const prefixSums: bigint[] = [0n];
  records.forEach((record, i) => {
    if (record.leaseId !== expect.leaseId) fail('wrong-lease', `record ${record.seq} belongs to lease ${record.leaseId}`, record.seq);
    const previous = records[i - 1];
    if (previous && record.seq !== previous.seq + 1n) fail('seq', `record seq ${record.seq} follows ${previous.seq}`, record.seq);
    if (record.t1 < record.t0) fail('interval', `record ${record.seq} ends (${record.t1}) before it starts (${record.t0})`, record.seq);
    if (previous && record.t0 > previous.t1) fail('interval', `gap between record ${previous.seq} (to ${previous.t1}) and ${record.seq} (from ${record.t0})`, record.seq);
    if (previous && record.t0 < previous.t1) fail('interval', `record ${record.seq} (from ${record.t0}) overlaps ${previous.seq} (to ${previous.t1})`, record.seq);
    if (chain && (record.t0 < chain.startedAt || record.t1 > chain.end)) {
      fail('interval', `record ${record.seq} [${record.t0}, ${record.t1}] lies outside the lease [${chain.startedAt}, ${chain.end}]`, record.seq);
    }
    const expected = usageAmount(view.rates, record);
    if (record.amount !== expected) fail('amount', `record ${record.seq} charges ${record.amount}, the rates give ${expected}`, record.seq);
    prefixSums.push((prefixSums[i] ?? 0n) + record.amount);
  });

  if (view.checkpoints.length === 0) fail('no-checkpoint', 'no checkpoint to verify against');
  const checkpoints = [...view.checkpoints].sort((a, b) => (a.checkpoint.seq < b.checkpoint.seq ? -1 : a.checkpoint.seq > b.checkpoint.seq ? 1 : 0));
  let previous: CheckpointView | undefined;
  let from = 0;
  for (const cpView of checkpoints) {
    const cp = cpView.checkpoint;
    if (cp.leaseId !== expect.leaseId) fail('wrong-lease', `checkpoint ${cp.seq} is for lease ${cp.leaseId}`, cp.seq);
    let signer: string | undefined;
    try {
      signer = verifyTypedData(expect.domain, CHECKPOINT_TYPES, cp, cpView.providerSignature);
    } catch {
      signer = undefined;
    }
    if (signer !== getAddress(expect.provider)) fail('checkpoint-signature', `checkpoint ${cp.seq} is not signed by ${expect.provider}`, cp.seq);
    if (previous && (cp.seq === previous.checkpoint.seq || cp.cumulativeAmount < previous.checkpoint.cumulativeAmount)) {
      fail('checkpoint-order', `checkpoint ${cp.seq} repeats a seq or lowers the cumulative amount`, cp.seq);
    }
    // The prefix of records this checkpoint commits to: same sum, same root.
    let covered = -1;
    for (let n = from; n <= records.length; n += 1) {
      if (prefixSums[n] !== cp.cumulativeAmount) continue;
      if (n > 0 && usageTree(records.slice(0, n)).root === cp.usageRoot) {
        covered = n;
        break;
      }
    }
    if (covered < 0) {
      const sumMatches = prefixSums.slice(from).includes(cp.cumulativeAmount);
      fail(sumMatches ? 'root' : 'cumulative', `checkpoint ${cp.seq} commits to no prefix of the records (${sumMatches ? 'root' : 'cumulative amount'} differs)`, cp.seq);
    }
    from = covered;
    previous = cpView;
  }
  const latest = previous as CheckpointView;
  if (from !== records.length) fail('cumulative', `latest checkpoint ${latest.checkpoint.seq} covers ${from} of ${records.length} records`, latest.checkpoint.seq);
  for (const { record, proof } of view.records) {
    if (!StandardMerkleTree.verify(latest.checkpoint.usageRoot, USAGE_LEAF_ENCODING, usageLeafValues(record), proof)) {
      fail('proof', `record ${record.seq}'s proof does not reach the root of checkpoint ${latest.checkpoint.seq}`, record.seq);
    }
  }
  if (latest.checkpoint.resultDigest !== ZERO_BYTES32 && latest !== checkpoints[checkpoints.length - 1]) {
    fail('checkpoint-order', 'a final checkpoint is followed by another');
  }

  if (chain) {
    if (chain.paid > latest.checkpoint.cumulativeAmount) fail('chain-mismatch', `chain paid ${chain.paid}, more than the ${latest.checkpoint.cumulativeAmount} shown`);
    if (chain.pending) {
      const pending = chain.pending;
      const shown = checkpoints.find((c) => c.checkpoint.seq === pending.seq);
      if (!shown || shown.checkpoint.usageRoot !== pending.usageRoot || shown.checkpoint.cumulativeAmount !== pending.cumulativeAmount) {
        fail('chain-mismatch', `the pending claim (seq ${pending.seq}, root ${pending.usageRoot}) is not a checkpoint the provider showed`, pending.seq);
      }
    }
  }
  const last = records[records.length - 1];
  return { latest, total: prefixSums[records.length] ?? 0n, coveredUntil: last ? last.t1 : 0n };
}
