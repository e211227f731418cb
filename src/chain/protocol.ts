import { AbiCoder, getAddress, keccak256, toUtf8Bytes, TypedDataEncoder, type Signer, type TypedDataDomain } from 'ethers';

/**
 * The off-chain half of contracts/MarketplaceV2.sol (docs/settlement-v2.md): the EIP-712 types,
 * the lease's terms and id, and the amount rule, written once here so the provider builds exactly
 * what the contract checks and the tenant checks exactly that. The usage records are in
 * ./usage-leaf.ts, the contract's evidence rules in ./evidence.ts. Amounts are token base units
 * (bigint); times are unix seconds.
 */

export const EIP712_NAME = 'ProviderMarketplace';
export const EIP712_VERSION = '2';

export function marketplaceDomain(chainId: number | bigint, marketplaceAddress: string): TypedDataDomain {
  return { name: EIP712_NAME, version: EIP712_VERSION, chainId, verifyingContract: marketplaceAddress };
}

export type { Rates, Allocation, Quote, LeaseTerms, Checkpoint } from '../vocabulary';
import type { Quote, LeaseTerms, Checkpoint } from '../vocabulary';

export const ZERO_BYTES32 = `0x${'0'.repeat(64)}`;

export interface SignedCheckpoint {
  checkpoint: Checkpoint;
  signature: string;
}

export const LATE_PENALTY_BPS = 1_000n;
export const FINDER_REWARD_BPS = 1_000n;
export const COMPENSATION_BPS = 5_000n;
const BPS = 10_000n;

const RATES_TYPE = [
  { name: 'perSecond', type: 'uint256' },
  { name: 'perCpuSecond', type: 'uint256' },
  { name: 'perGpuSecond', type: 'uint256' },
  { name: 'perGiBEgress', type: 'uint256' },
];
const ALLOCATION_TYPE = [
  { name: 'cpuMillicores', type: 'uint64' },
  { name: 'gpuCount', type: 'uint64' },
  { name: 'egressBytesPerSecond', type: 'uint64' },
];

export const QUOTE_TYPES = {
  Quote: [
    { name: 'provider', type: 'address' },
    { name: 'tenant', type: 'address' },
    { name: 'manifestHash', type: 'bytes32' },
    { name: 'rates', type: 'Rates' },
    { name: 'allocation', type: 'Allocation' },
    { name: 'maxDuration', type: 'uint64' },
    { name: 'expiresAt', type: 'uint64' },
    { name: 'nonce', type: 'uint96' },
  ],
  Rates: RATES_TYPE,
  Allocation: ALLOCATION_TYPE,
};

export const CHECKPOINT_TYPES = {
  Checkpoint: [
    { name: 'leaseId', type: 'uint256' },
    { name: 'usageRoot', type: 'bytes32' },
    { name: 'recordCount', type: 'uint64' },
    { name: 'cumulativeAmount', type: 'uint256' },
    { name: 'periodEnd', type: 'uint64' },
    { name: 'resultDigest', type: 'bytes32' },
  ],
};

const abi = AbiCoder.defaultAbiCoder();

const TERMS_TUPLE =
  'tuple(address provider,address tenant,uint64 startedAt,uint96 deposit,' +
  'tuple(uint256 perSecond,uint256 perCpuSecond,uint256 perGpuSecond,uint256 perGiBEgress) rates,' +
  'tuple(uint64 cpuMillicores,uint64 gpuCount,uint64 egressBytesPerSecond) allocation)';

/** keccak256(abi.encode(terms)): the hash a lease keeps. */
export function hashTerms(terms: LeaseTerms): string {
  return keccak256(abi.encode([TERMS_TUPLE], [terms]));
}

export function leaseIdOf(provider: string, nonce: bigint): bigint {
  if (nonce < 0n || nonce >= 2n ** 96n) throw new RangeError('a quote nonce must fit in 96 bits');
  return (BigInt(getAddress(provider)) << 96n) | nonce;
}

/** The nonce of the quote a lease was opened with: the low 96 bits of its id. */
export function quoteNonceOf(leaseId: bigint): bigint {
  return leaseId & ((1n << 96n) - 1n);
}

export function providerOfLease(leaseId: bigint): string {
  return getAddress(`0x${(leaseId >> 96n).toString(16).padStart(40, '0')}`);
}

/** What `paid` becomes when a checkpoint of `cumulativeAmount` is redeemed or its claim is final (on time). */
export function payableTo(cumulativeAmount: bigint, deposit: bigint): bigint {
  return cumulativeAmount < deposit ? cumulativeAmount : deposit;
}

/** A late claim (after end + challengeWindow) keeps 90% of what it adds above `floor` (paid or pending). */
export function latePayableTo(floor: bigint, target: bigint): bigint {
  return target <= floor ? target : floor + ((target - floor) * (BPS - LATE_PENALTY_BPS)) / BPS;
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
