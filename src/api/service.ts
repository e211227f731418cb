import type { Checkpoint, Quote, Rates, UsageRecord } from '../chain';
import type { LeaseState, EndReason } from '../leases';
import type { Manifest } from '../runtime';

/**
 * What the provider API serves, as the lease engine offers it. The API turns HTTP into these
 * calls and their results (or ProviderErrors) back into HTTP; it holds no state of its own.
 * Every method that names a lease checks that `tenant` is that lease's tenant (AUTH_FORBIDDEN)
 * and that the lease exists (LEASE_NOT_FOUND).
 */
export interface ProviderService {
  offer(): Promise<Offer>;
  /** Admission, pricing, capacity reserved until the quote expires, signed quote out. */
  quote(tenant: string, manifest: Manifest): Promise<QuoteResponse>;
  lease(leaseId: string, tenant: string): Promise<LeaseView>;
  usage(leaseId: string, tenant: string): Promise<UsageView>;
  /** Stores the tenant's signature over checkpoint `seq` (verified here); the engine redeems it. */
  countersign(leaseId: string, seq: number, tenant: string, signature: string): Promise<CheckpointView>;
  /** The lease's stdout/stderr; ends when the container ends (follow) or at the end of the log. */
  logs(leaseId: string, tenant: string, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry>;
  status(): Promise<DaemonStatus>;
}

export interface Offer {
  provider: string;
  chainId: number;
  marketplace: string;
  region: string;
  /** False while draining: quotes are refused. */
  accepting: boolean;
  free: {
    cpuMillis: number;
    memoryBytes: number;
    diskBytes: number;
    /** Free GPU units grouped by model (and MIG profile). */
    gpus: { model: string; profile: string | null; memoryBytes: number | null; count: number }[];
  };
  /** The config's rate card, amounts as decimal strings of token base units. */
  rateCard: {
    perLeaseSecond: string;
    perCpuSecond: string;
    perGiBMemorySecond: string;
    perGpuSecond: string;
    perGpuSecondByModel: Record<string, string>;
    perGiBEgress: string;
    minimumPerLease: string;
  };
  maxLeaseDurationSeconds: number;
}

export interface QuoteResponse {
  quote: Quote;
  /** The provider's EIP-712 signature over `quote`: what `openLease` takes. */
  signature: string;
  /** The quote's EIP-712 hash. */
  quoteHash: string;
  /** What the provider holds for it until quote.expiresAt. */
  allocation: { cpuMillis: number; memoryBytes: number; diskBytes: number; gpuModels: string[] };
}

export interface CheckpointView {
  checkpoint: Checkpoint;
  providerSignature: string;
  tenantSignature: string | null;
  /** signed: served, not yet on-chain; redeemed/claimed: submitted; final: paid. */
  status: 'signed' | 'redeemed' | 'claimed' | 'final';
}

export interface LeaseView {
  leaseId: string;
  tenant: string;
  state: LeaseState;
  endReason: EndReason | null;
  manifestHash: string;
  /** Unix seconds. */
  openedAt: number | null;
  startedAt: number | null;
  endedAt: number | null;
  container: { running: boolean; status: string; exitCode: number | null; oomKilled: boolean } | null;
  ports: { containerPort: number; protocol: 'tcp' | 'udp'; hostPort: number }[];
  lastCheckpoint: CheckpointView | null;
}

export interface UsageView {
  leaseId: string;
  rates: Rates;
  /** Every record so far, each with its Merkle proof against the latest checkpoint's usageRoot. */
  records: { record: UsageRecord; proof: string[] }[];
  checkpoints: CheckpointView[];
}

export interface LogQuery {
  /** Last N lines first; all when absent. */
  tail?: number;
  follow: boolean;
  /** Unix seconds. */
  since?: number;
}

export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** ISO 8601, as the engine timestamped it. */
  time: string;
  line: string;
}

export interface DaemonStatus {
  version: string;
  provider: string;
  chainId: number;
  devnet: boolean;
  accepting: boolean;
  /** Unix seconds. */
  startedAt: number;
  leases: Record<LeaseState, number>;
  docker: { reachable: boolean };
  chain: { headBlock: number | null; cursorBlock: number | null };
}
