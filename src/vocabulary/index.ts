/**
 * The lease vocabulary: the words the store, the chain module and the lease engine share. It
 * imports nothing, so every module can depend on it without depending on each other. The chain
 * decides these shapes (the contract's EIP-712 types); the store persists them; the engine moves
 * a lease through the states.
 */

/**
 * Where a lease is. One enum: every fact the engine acts on after a restart is the state itself
 * (no side booleans).
 *
 * quoted     opened on-chain with our quote, not yet admitted by the engine
 * pulling    admitted: the image is fetched and the network prepared
 * starting   the image is ready: the workload is being created and started
 * running    the workload runs and is metered
 * stopping   an end was asked: the workload is being stopped
 * finishing  it ended: the final usage record and the result digest are taken, capacity freed
 * settling   the final usage is stored: final checkpoint, payment, close and settle on-chain
 * settled    terminal: it ran, and the chain settled it
 * failed     terminal: it never ran (pull or start failed), and the chain settled it
 * rejected   terminal: we refused it (not our quote, wrong manifest…), and the chain settled it
 */
export const LEASE_STATES = ['quoted', 'pulling', 'starting', 'running', 'stopping', 'finishing', 'settling', 'settled', 'failed', 'rejected'] as const;
export type LeaseState = (typeof LEASE_STATES)[number];

export const TERMINAL_STATES: ReadonlySet<LeaseState> = new Set<LeaseState>(['settled', 'failed', 'rejected']);

/** States with work left: everything not terminal. */
export const LIVE_STATES: readonly LeaseState[] = LEASE_STATES.filter((s) => !TERMINAL_STATES.has(s));

/** States that hold capacity in the allocation ledger. */
export const HOLDING_STATES: ReadonlySet<LeaseState> = new Set<LeaseState>(['pulling', 'starting', 'running', 'stopping']);

/** Why a lease ended; recorded with the final usage record and shown to the tenant. */
export const END_REASONS = [
  'exited',
  'max-duration',
  'escrow-exhausted',
  'tenant-closed',
  'operator-drain',
  'disk-quota',
  /** The GPU under it failed (lost, a fatal Xid or ECC error): billed to the moment the daemon saw it. */
  'gpu-failed',
  'container-vanished',
  'pull-failed',
  'start-failed',
  'refused',
] as const;
export type EndReason = (typeof END_REASONS)[number];

/** The linear rate card a quote fixes on-chain. */
export interface Rates {
  /** Per second of lease, whatever it uses (memory reservation is priced in here). */
  perSecond: bigint;
  /** Per CPU-second used; records count CPU in milliseconds. */
  perCpuSecond: bigint;
  /** Per GPU-second allocated; records count GPU time in milliseconds. */
  perGpuSecond: bigint;
  /** Per GiB (2^30 bytes) sent out of the lease. */
  perGiBEgress: bigint;
}

/** What a lease may physically use, committed by the quote; records above it are disputable. */
export interface Allocation {
  /** Thousandths of a core: a record may count at most cpuMillicores × seconds CPU-ms. */
  cpuMillicores: bigint;
  /** A record may count at most gpuCount × seconds × 1000 GPU-ms. */
  gpuCount: bigint;
  /** A record may count at most egressBytesPerSecond × seconds bytes sent. */
  egressBytesPerSecond: bigint;
}

export interface Quote {
  provider: string;
  tenant: string;
  manifestHash: string;
  rates: Rates;
  allocation: Allocation;
  maxDuration: bigint;
  expiresAt: bigint;
  /** Below 2^96: the lease id is (provider << 96) | nonce. */
  nonce: bigint;
}

/** What the contract fixed at openLease (announced in LeaseOpened); every later call passes it back. */
export interface LeaseTerms {
  provider: string;
  tenant: string;
  startedAt: bigint;
  deposit: bigint;
  rates: Rates;
  allocation: Allocation;
}

export interface Checkpoint {
  leaseId: bigint;
  usageRoot: string;
  /** The checkpoint covers records 0 .. recordCount - 1. */
  recordCount: bigint;
  /** The last covered record's running total, never cut to a cap or the escrow. */
  cumulativeAmount: bigint;
  /** The last covered record's t1. */
  periodEnd: bigint;
  /** Zero until the lease's final checkpoint. */
  resultDigest: string;
}

export interface UsageRecord {
  leaseId: bigint;
  /** Position in the lease's record sequence, from 0. */
  index: bigint;
  t0: bigint;
  t1: bigint;
  cpuMillis: bigint;
  memoryByteSeconds: bigint;
  gpuMillis: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  amount: bigint;
  /** Sum of the amounts of records 0 .. index. */
  total: bigint;
}

export type CheckpointStatus = 'signed' | 'redeemed' | 'claimed' | 'final';
