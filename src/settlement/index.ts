export { leaseRates, maxRatePerSecond, claimCap, gpuRate, EGRESS_ALLOWANCE_BYTES_PER_SECOND, type RateCard } from './pricing';
export { resultDigest, LogDigest, EMPTY_LOGS_SHA256, draftCheckpoint, signDraft, usageProofs, type CheckpointDraft } from './checkpoints';
export { Settler, toCheckpoint, type SettlerDeps, type SettlerSettings } from './settler';
export {
  redeemKey,
  claimKey,
  finalizeKey,
  closeKey,
  settleKey,
  withdrawKey,
  WITHDRAW_KEY_PREFIX,
  parseSettlementKey,
  isPaymentKey,
  type SettlementKey,
  type SettlementKeyKind,
} from './outbox-keys';
