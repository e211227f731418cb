export { ChainClient, type ChainSettings, type ChainClientDeps, type ChainStore } from './chain-client';
export { TransactionSender, type TxIntent, type TxSigner } from './transaction-sender';
export { DEFAULT_SENDER_POLICY, type SenderPolicy } from './sender-policy';
export { outcomeOf, type TxOutcome } from './tx-outcome';
export { EventFollower, type EventHandler, type EventFollowerOptions, type FollowerStore } from './event-follower';
export { EVENT_SCHEMAS, FAULTS, decodeMarketplaceLog, type MarketplaceEvent, type MarketplaceEventName, type EventPosition } from './events';
export { marketplaceAt, tokenAt, type MarketplaceContract, type TokenContract, type MarketplaceAbi } from './marketplace';
export { TypedContract, boundedRpc, toPlain, type Abi, type ArgsOf, type ResultOf } from './typed-contract';
export {
  EIP712_NAME,
  EIP712_VERSION,
  QUOTE_TYPES,
  CHECKPOINT_TYPES,
  USAGE_RECORD_FIELDS,
  USAGE_LEAF_ENCODING,
  ZERO_BYTES32,
  marketplaceDomain,
  usageLeafValues,
  usageTree,
  usageAmount,
  hashQuote,
  hashCheckpoint,
  signQuote,
  signCheckpoint,
  canonicalJson,
  manifestHash,
  type Rates,
  type Quote,
  type Checkpoint,
  type UsageRecord,
} from './protocol';
export { loadKeystore, createKeystore, readKeystorePassword, keystoreSettings, type KeystoreSettings, type Env } from './keys';
export { deployMarketplace, deployMockToken, DEVNET_MARKETPLACE_PARAMS, type MarketplaceParams } from './deploy';
export { createRpcProvider, createWsProvider, describeRpcError } from './rpc';
export { Backoff, Wakeup, sleep, type BackoffPolicy } from './backoff';
