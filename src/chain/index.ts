export { ChainClient, type ChainSettings, type ChainClientDeps, type ChainStore } from './chain-client';
export { TransactionSender, type TxIntent, type TxSigner } from './transaction-sender';
export { DEFAULT_SENDER_POLICY, type SenderPolicy } from './sender-policy';
export { outcomeOf, type TxOutcome } from './tx-outcome';
export { EventFollower, type EventHandler, type EventFollowerOptions, type FollowerStore } from './event-follower';
export { EVENT_SCHEMAS, decodeMarketplaceLog, type MarketplaceEvent, type MarketplaceEventName, type EventPosition } from './events';
export { marketplaceAt, tokenAt, providerAccount, PROVIDER_SLASHED, type MarketplaceContract, type TokenContract, type MarketplaceAbi, type ProviderAccount } from './marketplace';
export { TypedContract, boundedRpc, toPlain, type Abi, type ArgsOf, type ResultOf } from './typed-contract';
export {
  EIP712_NAME,
  EIP712_VERSION,
  QUOTE_TYPES,
  CHECKPOINT_TYPES,
  ZERO_BYTES32,
  LATE_PENALTY_BPS,
  FINDER_REWARD_BPS,
  COMPENSATION_BPS,
  marketplaceDomain,
  hashQuote,
  hashCheckpoint,
  hashTerms,
  signQuote,
  signCheckpoint,
  leaseIdOf,
  providerOfLease,
  quoteNonceOf,
  payableTo,
  latePayableTo,
  canonicalJson,
  manifestHash,
  type Rates,
  type Allocation,
  type Quote,
  type LeaseTerms,
  type Checkpoint,
  type SignedCheckpoint,
} from './protocol';
export {
  USAGE_RECORD_FIELDS,
  USAGE_LEAF_ENCODING,
  usageLeafValues,
  usageTree,
  usageLeaf,
  recordAmount,
  ceilingRate,
  claimCap,
  usageLimits,
  clampToAllocation,
  nextRecord,
  checkpointOf,
  type UsageRecord,
  type MeteredUsage,
  type ProvenRecord,
} from './usage-leaf';
export { FAULTS, recordFault, pairFault, checkpointsConflict, findDispute, type Fault, type DisputeEvidence } from './evidence';
export { loadKeystore, createKeystore, readKeystorePassword, keystoreSettings, type KeystoreSettings, type Env } from './keys';
export { deployMarketplace, deployMockToken, DEVNET_MARKETPLACE_PARAMS, BURN_ADDRESS, type MarketplaceParams } from './deploy';
export { createRpcProvider, createWsProvider, describeRpcError } from './rpc';
export { TenantFunding, type TenantFundingOptions, type TenantFunds } from './tenant-funding';
export { Backoff, Wakeup, sleep, type BackoffPolicy } from './backoff';
