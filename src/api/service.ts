import type { Allocation, Checkpoint, Quote, Rates, UsageRecord } from '../chain';
import type { GpuModelInfo } from '../capacity';
import type { GpuUsageReading } from '../store';
import type { LeaseState, EndReason } from '../leases';
import type { SignedBenchmarks } from '../benchmark';
import type { Manifest } from '../runtime';

/**
 * What the provider API serves, as the lease engine offers it. The API turns HTTP into these
 * calls and their results (or ProviderErrors) back into HTTP; it holds no state of its own.
 * Every method that names a lease checks that `tenant` is that lease's tenant (AUTH_FORBIDDEN)
 * and that the lease exists (LEASE_NOT_FOUND).
 */
export interface ProviderService extends OperatorService {
  offer(): Promise<Offer>;
  /** Admission, pricing, capacity reserved until the quote expires, signed quote out. */
  quote(tenant: string, manifest: Manifest): Promise<QuoteResponse>;
  lease(leaseId: string, tenant: string): Promise<LeaseView>;
  usage(leaseId: string, tenant: string): Promise<UsageView>;
  /** Stores the tenant's signature over checkpoint `seq` (verified here); the engine redeems it. */
  countersign(leaseId: string, seq: number, tenant: string, signature: string): Promise<CheckpointView>;
  /** The lease's stdout/stderr; ends when the container ends (follow) or at the end of the log. */
  logs(leaseId: string, tenant: string, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry>;
}

/**
 * What the operator asks of the daemon on its own machine (routes with `auth: 'operator'`): every
 * lease, whoever its tenant, and the provider's money. No tenant check; LEASE_NOT_FOUND still.
 */
export interface OperatorService {
  status(): Promise<DaemonStatus>;
  operatorLeases(): Promise<OperatorLeaseSummary[]>;
  operatorLease(leaseId: string): Promise<OperatorLeaseDetail>;
  /** Any lease's stdout/stderr, as `logs` streams them to its tenant. */
  operatorLogs(leaseId: string, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry>;
  earnings(): Promise<EarningsView>;
  /** Withdraws the finalised earnings now; waits for the transaction at most `timeoutMs`. */
  /** Waits for the transaction up to `timeoutMs`, or until `signal` (the daemon shutting down). */
  withdraw(timeoutMs: number, signal?: AbortSignal): Promise<WithdrawResult>;
}

/** One GPU model (or MIG profile) on this machine: what a tenant filters on (see the quote's gpus constraints). */
export type GpuModelOffer = GpuModelInfo;

/** One GPU's health as the daemon's monitor last judged it. */
export interface GpuHealthStatusView {
  index: number;
  uuid: string;
  model: string;
  status: 'healthy' | 'unhealthy' | 'recovering';
  reason: string | null;
  /** Unix seconds the status began (0: since start). */
  since: number;
  /** Unix seconds a recovering GPU goes back on sale if it stays healthy. */
  backOnSaleAt: number | null;
  temperatureCelsius: number | null;
  xidErrors: number;
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
  /** Every GPU model on this machine, with its driver, CUDA, PCIe link and health. */
  gpuModels: GpuModelOffer[];
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
  /**
   * The provider's signed GPU benchmark (`provider gpu-bench`): figures per GPU UUID, EIP-191 signed
   * by the provider key over canonical JSON. Check it with verifyBenchmarks before trusting it.
   * Null when none was run.
   */
  benchmarks: SignedBenchmarks | null;
}

export interface QuoteResponse {
  quote: Quote;
  /** The provider's EIP-712 signature over `quote`: what `openLease` takes. */
  signature: string;
  /** The quote's EIP-712 hash. */
  quoteHash: string;
  /** What the provider holds for it until quote.expiresAt. */
  allocation: { cpuMillis: number; memoryBytes: number; diskBytes: number; gpuModels: string[] };
  /**
   * The image the lease will run, resolved before the quote was signed: `digest` is the registry's
   * manifest digest (`repository@sha256:...`), or the image id of an image built on the provider.
   */
  image: { reference: string; digest: string; source: 'registry' | 'local' };
}

export interface CheckpointView {
  /** The provider's numbering of the lease's checkpoints, from 1: the countersign route names it. The chain has none. */
  seq: number;
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
  /**
   * What the lease's GPUs were doing at the end of each usage record (every record stored, not only
   * checkpointed ones). Informational: billing is allocated GPU-seconds, and these figures are in
   * no leaf or signature. Empty for a lease without GPUs.
   */
  gpus: GpuReadingView[];
}

/** One GPU (or MIG slice) a lease holds, read at the end of a usage record (stored beside the records, never in them). */
export type GpuReadingView = GpuUsageReading;

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
  /** Each GPU's health (empty on a machine without GPUs on offer). */
  gpus: GpuHealthStatusView[];
  /** How tenants reach this API (decided at start); null before it is decided. */
  reachability: ReachabilityView | null;
  /** SHA-256 of the certificate the API serves now (the pin registered on-chain); null without TLS. */
  tlsSha256: string | null;
}

/** The path tenants reach the API by (public, upnp, ipv6, relay, configured, local, none), its URL, and whether it was proven from outside. */
export interface ReachabilityView {
  path: 'public' | 'upnp' | 'ipv6' | 'relay' | 'configured' | 'local' | 'none';
  url: string;
  verified: 'outside' | 'no-vantage' | 'failed' | 'not-needed';
  detail: string;
  fix: string | null;
}

export type CheckpointStatus = CheckpointView['status'];

export interface OperatorLeaseSummary {
  leaseId: string;
  tenant: string;
  state: LeaseState;
  endReason: EndReason | null;
  /** The manifest's image, from the quote this provider issued; null for a quote it never stored. */
  image: string | null;
  /** The lease's Docker container name, for `docker logs` and `docker inspect`. */
  container: string;
  /** Unix seconds. */
  openedAt: number;
  startedAt: number | null;
  endedAt: number | null;
  /** The latest checkpoint's cumulativeAmount (token base units): earned so far, paid or not. */
  earned: bigint;
  lastCheckpoint: { seq: number; status: CheckpointStatus; final: boolean; countersigned: boolean } | null;
  /** The last transition's reason. */
  detail: string | null;
}

export interface OperatorLeaseDetail extends OperatorLeaseSummary {
  deposit: bigint;
  /** What the lease may use, as its quote committed it. */
  allocation: Allocation;
  maxDurationSeconds: number;
  exitCode: number | null;
  closedAt: number | null;
  chainSettled: boolean;
  transitions: { from: string; to: string; event: string; reason: string | null; at: number }[];
  checkpoints: { seq: number; cumulativeAmount: bigint; periodEnd: number; status: CheckpointStatus; final: boolean; countersigned: boolean }[];
  /** The latest reading of each GPU the lease holds; empty without GPUs or readings. */
  gpus: GpuReadingView[];
}

/**
 * The provider's money, token base units. Chain figures are null when the chain was not asked
 * (the daemon is down and the store is all there is) or did not answer.
 */
export interface EarningsView {
  /** Null only from a store whose daemon never sent a transaction. */
  provider: string | null;
  token: { address: string; decimals: number | null; symbol: string | null } | null;
  /** The provider's earnings on the marketplace: redeemed and finalised, not yet withdrawn. */
  withdrawable: bigint | null;
  /** Where withdraw() pays them (registered on-chain; config settlement.payoutAddress). */
  payout: string | null;
  /** Unilateral claims submitted and waiting out the challenge window (less what is already paid). */
  claimedPending: bigint;
  /** Withdrawn so far, counted from the chain's Withdrawn events. */
  withdrawn: bigint;
  /** The provider address's token balance. */
  balance: bigint | null;
  /** A withdraw transaction still out, if any. */
  withdrawal: { key: string; state: 'queued' | 'pending' } | null;
  /**
   * paid: the chain's figure for the lease when the chain was asked, else the store's (the latest
   * checkpoint the chain has paid in full).
   */
  leases: { leaseId: string; state: LeaseState; earned: bigint; checkpoint: CheckpointStatus | null; paid: bigint }[];
}

/**
 * nothing: there were no finalised earnings; confirmed/reverted/failed: the transaction's outcome;
 * pending: still out when the wait ended (`key` names it in the outbox).
 */
export interface WithdrawResult {
  outcome: 'nothing' | 'confirmed' | 'pending' | 'reverted' | 'failed';
  key: string | null;
  /** What was withdrawn (confirmed: the Withdrawn event's amount), else what was withdrawable. */
  amount: bigint;
  txHash: string | null;
  error: string | null;
}
