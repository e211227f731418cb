export { leaseRates, leaseAllocation, gpuRate, type RateCard } from './pricing';
export { resultDigest, LogDigest, EMPTY_LOGS_SHA256, usageProofs } from './checkpoints';
export { planSettlement, claimDeadline, type LeaseFacts, type SettlementAction, type SettlementPlan, type ChainLeaseState, type IntentState, type PlannedCheckpoint } from './planner';
export { Settler, toCheckpoint, type SettlerDeps, type SettlerSettings, type SettlementRound, type StepOutcome } from './settler';
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
