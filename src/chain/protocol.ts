import { keccak256, toUtf8Bytes, TypedDataEncoder, type TypedDataDomain, type Signer } from 'ethers';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

/**
 * The off-chain half of contracts/Marketplace.sol: EIP-712 types, the usage-record leaf encoding
 * and the pricing rule, written once here so the lease engine builds exactly what the contract
 * checks. Amounts are token base units (bigint); times are unix seconds.
 */

export const EIP712_NAME = 'ProviderMarketplace';
export const EIP712_VERSION = '1';

export function marketplaceDomain(chainId: number | bigint, marketplaceAddress: string): TypedDataDomain {
  return { name: EIP712_NAME, version: EIP712_VERSION, chainId, verifyingContract: marketplaceAddress };
}

export type { Rates, Quote, Checkpoint, UsageRecord } from '../vocabulary';
import type { Rates, Quote, Checkpoint, UsageRecord } from '../vocabulary';

export const ZERO_BYTES32 = `0x${'0'.repeat(64)}`;

export const QUOTE_TYPES = {
  Quote: [
    { name: 'provider', type: 'address' },
    { name: 'tenant', type: 'address' },
    { name: 'manifestHash', type: 'bytes32' },
    { name: 'rates', type: 'Rates' },
    { name: 'maxRatePerSecond', type: 'uint256' },
    { name: 'maxDuration', type: 'uint64' },
    { name: 'expiresAt', type: 'uint64' },
    { name: 'nonce', type: 'uint256' },
  ],
  Rates: [
    { name: 'perSecond', type: 'uint256' },
    { name: 'perCpuSecond', type: 'uint256' },
    { name: 'perGpuSecond', type: 'uint256' },
    { name: 'perGiBEgress', type: 'uint256' },
  ],
};

export const CHECKPOINT_TYPES = {
  Checkpoint: [
    { name: 'leaseId', type: 'uint256' },
    { name: 'seq', type: 'uint64' },
    { name: 'usageRoot', type: 'bytes32' },
    { name: 'cumulativeAmount', type: 'uint256' },
    { name: 'periodEnd', type: 'uint64' },
    { name: 'resultDigest', type: 'bytes32' },
  ],
};

/** Field order and Solidity types of a usage-record leaf (StandardMerkleTree leaf encoding). */
export const USAGE_RECORD_FIELDS = [
  ['leaseId', 'uint256'],
  ['seq', 'uint64'],
  ['t0', 'uint64'],
  ['t1', 'uint64'],
  ['cpuMillis', 'uint64'],
  ['memoryByteSeconds', 'uint256'],
  ['gpuMillis', 'uint64'],
  ['rxBytes', 'uint64'],
  ['txBytes', 'uint64'],
  ['amount', 'uint256'],
] as const satisfies readonly (readonly [keyof UsageRecord, string])[];

/** The `leafEncoding` argument of StandardMerkleTree.of for usage records. */
export const USAGE_LEAF_ENCODING: string[] = USAGE_RECORD_FIELDS.map(([, type]) => type);

export function usageLeafValues(record: UsageRecord): bigint[] {
  return USAGE_RECORD_FIELDS.map(([name]) => record[name]);
}

/** The tree the contract's `disputeUsage` verifies proofs against. */
export function usageTree(records: readonly UsageRecord[]): StandardMerkleTree<bigint[]> {
  return StandardMerkleTree.of(records.map(usageLeafValues), USAGE_LEAF_ENCODING);
}

const GIB_SHIFT = 30n;

/** What a record must charge under `rates`; each term rounds down, as the contract does. */
export function usageAmount(rates: Rates, record: Omit<UsageRecord, 'amount'>): bigint {
  if (record.t1 < record.t0) throw new RangeError('usage record ends before it starts');
  return (
    rates.perSecond * (record.t1 - record.t0) +
    (rates.perCpuSecond * record.cpuMillis) / 1000n +
    (rates.perGpuSecond * record.gpuMillis) / 1000n +
    ((rates.perGiBEgress * record.txBytes) >> GIB_SHIFT)
  );
}

export function hashQuote(domain: TypedDataDomain, quote: Quote): string {
  return TypedDataEncoder.hash(domain, QUOTE_TYPES, quote);
}

export function hashCheckpoint(domain: TypedDataDomain, checkpoint: Checkpoint): string {
  return TypedDataEncoder.hash(domain, CHECKPOINT_TYPES, checkpoint);
}

export function signQuote(signer: Signer, domain: TypedDataDomain, quote: Quote): Promise<string> {
  return signer.signTypedData(domain, QUOTE_TYPES, quote);
}

/** The provider signs a checkpoint; the tenant countersigns the very same typed data for `redeem`. */
export function signCheckpoint(signer: Signer, domain: TypedDataDomain, checkpoint: Checkpoint): Promise<string> {
  return signer.signTypedData(domain, CHECKPOINT_TYPES, checkpoint);
}

/**
 * JSON with object keys sorted at every level and no whitespace: the same manifest gives the
 * same bytes whoever serialises it, so provider and tenant compute the same manifestHash.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return JSON.stringify(value.toString());
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, item]) => item !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
}

/**
 * The quote's manifestHash: keccak256 of the manifest's canonical JSON, without `registryAuth`.
 * Credentials never go on-chain, not even hashed (a weak password's hash can be brute-forced),
 * and they may be rotated without changing what the lease runs.
 */
export function manifestHash(manifest: Readonly<Record<string, unknown>>): string {
  const { registryAuth: _credentials, ...hashed } = manifest;
  return keccak256(toUtf8Bytes(canonicalJson(hashed)));
}
