export { Store, openStore, openStoreReadOnly, storePathFor } from './store';
// The repositories are handed out by a Store, never built outside it: their types only.
export type { MetaRepository } from './meta-repository';
export type { QuoteRepository, StoredQuote, StoredAllocation, QuoteState } from './quote-repository';
export type { LeaseRepository, StoredLease, StoredLeasePatch, StoredTimeline, TransitionRow } from './lease-repository';
export type { UsageRepository, GpuUsageReading } from './usage-repository';
export type { CheckpointRepository, CheckpointSummary, StoredCheckpoint } from './checkpoint-repository';
export type { InboxRepository, InboxEvent } from './inbox-repository';
export type { OutboxRepository, OutboxEntry, OutboxAttempt, OutboxState, NewIntent } from './outbox-repository';
export type { CursorRepository, BlockCursor } from './cursor-repository';
export type { SqliteNonceLedger } from './nonce-ledger';
export type { ExecAuditRepository, ExecSessionStart, ExecSessionRecord } from './exec-audit-repository';
export type { AccessTokenRepository, StoredAccessToken } from './access-token-repository';
