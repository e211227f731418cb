import { z } from 'zod';
import { signedBenchmarksSchema } from '../benchmark';
import type { LeaseState, EndReason } from '../leases';
import type { Checkpoint, Quote, Rates, UsageRecord } from '../chain';
import type {
  CheckpointView,
  DaemonStatus,
  EarningsView,
  LeaseView,
  LogEntry,
  Offer,
  OperatorLeaseDetail,
  OperatorLeaseSummary,
  QuoteResponse,
  UsageView,
  WithdrawResult,
} from './service';

/**
 * The provider API's wire format, in one place: the server encodes every response through these
 * schemas (so nothing leaves that is not in them) and the tenant client decodes every response
 * through them (so nothing the provider sends is trusted unchecked). bigints travel as decimal
 * strings; z.codec turns them back into bigints on decode and into strings on encode.
 *
 * Response objects are `z.object` (unknown keys dropped: a newer provider may add fields);
 * request bodies are strict (an unknown key is refused).
 */

const DECIMAL = /^(0|[1-9][0-9]{0,77})$/;

/** A non-negative integer up to uint256 size, as a decimal string on the wire. */
export const uintWire = z.codec(z.string().regex(DECIMAL, 'expected a non-negative decimal integer string'), z.bigint().nonnegative(), {
  decode: (text) => BigInt(text),
  encode: (value) => value.toString(),
});
/** Token amounts the service already holds as decimal strings (the rate card). */
export const amountWire = z.string().regex(DECIMAL, 'expected a non-negative decimal integer string');
export const addressWire = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'expected an address (0x + 40 hex digits)');
export const bytes32Wire = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'expected 32 bytes as 0x + 64 hex digits');
export const signatureWire = z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'expected a 65-byte signature as 0x + 130 hex digits');
const count = z.number().int().nonnegative();
const unixSeconds = z.number().int().nonnegative();

import { END_REASONS, LEASE_STATES } from '../vocabulary';
export { END_REASONS, LEASE_STATES };

export const ratesWire = z.object({ perSecond: uintWire, perCpuSecond: uintWire, perGpuSecond: uintWire, perGiBEgress: uintWire });

export const allocationWire = z.object({ cpuMillicores: uintWire, gpuCount: uintWire, egressBytesPerSecond: uintWire });

export const quoteWire = z.object({
  provider: addressWire,
  tenant: addressWire,
  manifestHash: bytes32Wire,
  rates: ratesWire,
  allocation: allocationWire,
  maxDuration: uintWire,
  expiresAt: uintWire,
  nonce: uintWire,
});

export const checkpointWire = z.object({
  leaseId: uintWire,
  usageRoot: bytes32Wire,
  recordCount: uintWire,
  cumulativeAmount: uintWire,
  periodEnd: uintWire,
  resultDigest: bytes32Wire,
});

export const usageRecordWire = z.object({
  leaseId: uintWire,
  index: uintWire,
  t0: uintWire,
  t1: uintWire,
  cpuMillis: uintWire,
  memoryByteSeconds: uintWire,
  gpuMillis: uintWire,
  rxBytes: uintWire,
  txBytes: uintWire,
  amount: uintWire,
  total: uintWire,
});

const gpuModelOfferWire = z.object({
  model: z.string(),
  profile: z.string().nullable(),
  memoryBytes: count.nullable(),
  driverVersion: z.string().nullable(),
  cudaVersion: z.string().nullable(),
  pcie: z.object({ gen: count.nullable(), width: count.nullable() }),
  total: count,
  healthy: count,
  unhealthy: z.array(z.object({ uuid: z.string(), reason: z.string() })),
});

const gpuHealthWire = z.object({
  index: count,
  uuid: z.string(),
  model: z.string(),
  status: z.enum(['healthy', 'unhealthy', 'recovering']),
  reason: z.string().nullable(),
  since: count,
  backOnSaleAt: count.nullable(),
  temperatureCelsius: z.number().nullable(),
  xidErrors: count,
});

export const offerWire = z.object({
  provider: addressWire,
  chainId: z.number().int().positive(),
  marketplace: addressWire,
  region: z.string(),
  accepting: z.boolean(),
  free: z.object({
    cpuMillis: count,
    memoryBytes: count,
    diskBytes: count,
    gpus: z.array(z.object({ model: z.string(), profile: z.string().nullable(), memoryBytes: count.nullable(), count })),
  }),
  gpuModels: z.array(gpuModelOfferWire).default([]),
  rateCard: z.object({
    perLeaseSecond: amountWire,
    perCpuSecond: amountWire,
    perGiBMemorySecond: amountWire,
    perGpuSecond: amountWire,
    perGpuSecondByModel: z.record(z.string(), amountWire),
    perGiBEgress: amountWire,
    minimumPerLease: amountWire,
  }),
  maxLeaseDurationSeconds: count,
  // A provider from before benchmarks sends none.
  benchmarks: signedBenchmarksSchema.nullable().default(null),
});

export const quoteResponseWire = z.object({
  quote: quoteWire,
  signature: signatureWire,
  quoteHash: bytes32Wire,
  allocation: z.object({ cpuMillis: count, memoryBytes: count, diskBytes: count, gpuModels: z.array(z.string()) }),
  image: z.object({ reference: z.string(), digest: z.string(), source: z.enum(['registry', 'local']) }),
});

export const checkpointViewWire = z.object({
  seq: count,
  checkpoint: checkpointWire,
  providerSignature: signatureWire,
  tenantSignature: signatureWire.nullable(),
  status: z.enum(['signed', 'redeemed', 'claimed', 'final']),
});

export const leaseViewWire = z.object({
  leaseId: z.string().regex(DECIMAL),
  tenant: addressWire,
  state: z.enum(LEASE_STATES),
  endReason: z.enum(END_REASONS).nullable(),
  manifestHash: bytes32Wire,
  openedAt: unixSeconds.nullable(),
  startedAt: unixSeconds.nullable(),
  endedAt: unixSeconds.nullable(),
  container: z.object({ running: z.boolean(), status: z.string(), exitCode: z.number().int().nullable(), oomKilled: z.boolean() }).nullable(),
  ports: z.array(z.object({ containerPort: z.number().int(), protocol: z.enum(['tcp', 'udp']), hostPort: z.number().int() })),
  lastCheckpoint: checkpointViewWire.nullable(),
});

export const gpuReadingWire = z.object({
  seq: count,
  at: unixSeconds,
  uuid: z.string(),
  parentUuid: z.string().nullable(),
  utilization: z.number().min(0).max(1).nullable(),
  memoryUsedBytes: count.nullable(),
  memoryTotalBytes: count.nullable(),
});

export const usageViewWire = z.object({
  leaseId: z.string().regex(DECIMAL),
  rates: ratesWire,
  records: z.array(z.object({ record: usageRecordWire, proof: z.array(bytes32Wire) })),
  checkpoints: z.array(checkpointViewWire),
  // A provider from before GPU readings sends none.
  gpus: z.array(gpuReadingWire).default([]),
});

export const daemonStatusWire = z.object({
  version: z.string(),
  provider: addressWire,
  chainId: z.number().int().positive(),
  devnet: z.boolean(),
  accepting: z.boolean(),
  startedAt: unixSeconds,
  leases: z.record(z.enum(LEASE_STATES), count),
  docker: z.object({ reachable: z.boolean() }),
  chain: z.object({ headBlock: count.nullable(), cursorBlock: count.nullable() }),
  reachability: z
    .object({
      path: z.enum(['public', 'upnp', 'ipv6', 'relay', 'configured', 'local', 'none']),
      url: z.string(),
      verified: z.enum(['outside', 'no-vantage', 'failed', 'not-needed']),
      detail: z.string(),
      fix: z.string().nullable(),
    })
    .nullable()
    .default(null),
  gpus: z.array(gpuHealthWire).default([]),
  tlsSha256: z.string().regex(/^[0-9a-f]{64}$/).nullable().default(null),
});

const checkpointStatusWire = z.enum(['signed', 'redeemed', 'claimed', 'final']);

/** GET /v1/operator/leases: one row per lease. */
export const operatorLeaseSummaryWire = z.object({
  leaseId: z.string().regex(DECIMAL),
  tenant: addressWire,
  state: z.enum(LEASE_STATES),
  endReason: z.enum(END_REASONS).nullable(),
  image: z.string().nullable(),
  container: z.string(),
  openedAt: unixSeconds,
  startedAt: unixSeconds.nullable(),
  endedAt: unixSeconds.nullable(),
  earned: uintWire,
  lastCheckpoint: z.object({ seq: count, status: checkpointStatusWire, final: z.boolean(), countersigned: z.boolean() }).nullable(),
  detail: z.string().nullable(),
});
export const operatorLeasesWire = z.object({ leases: z.array(operatorLeaseSummaryWire) });

/** GET /v1/operator/leases/:id */
export const operatorLeaseDetailWire = operatorLeaseSummaryWire.extend({
  deposit: uintWire,
  allocation: allocationWire,
  maxDurationSeconds: count,
  exitCode: z.number().int().nullable(),
  closedAt: unixSeconds.nullable(),
  chainSettled: z.boolean(),
  transitions: z.array(z.object({ from: z.string(), to: z.string(), event: z.string(), reason: z.string().nullable(), at: unixSeconds })),
  checkpoints: z.array(
    z.object({ seq: count, cumulativeAmount: uintWire, periodEnd: unixSeconds, status: checkpointStatusWire, final: z.boolean(), countersigned: z.boolean() }),
  ),
  gpus: z.array(gpuReadingWire).default([]),
});

/** GET /v1/operator/earnings */
export const earningsWire = z.object({
  provider: addressWire.nullable(),
  token: z.object({ address: addressWire, decimals: count.nullable(), symbol: z.string().nullable() }).nullable(),
  withdrawable: uintWire.nullable(),
  payout: addressWire.nullable(),
  claimedPending: uintWire,
  withdrawn: uintWire,
  balance: uintWire.nullable(),
  withdrawal: z.object({ key: z.string(), state: z.enum(['queued', 'pending']) }).nullable(),
  leases: z.array(z.object({ leaseId: z.string().regex(DECIMAL), state: z.enum(LEASE_STATES), earned: uintWire, checkpoint: checkpointStatusWire.nullable(), paid: uintWire })),
});

/** POST /v1/operator/withdraw */
export const withdrawResultWire = z.object({
  outcome: z.enum(['nothing', 'confirmed', 'pending', 'reverted', 'failed']),
  key: z.string().nullable(),
  amount: uintWire,
  txHash: bytes32Wire.nullable(),
  error: z.string().nullable(),
});
/** An empty body, or a bound on how long to wait for the transaction. */
export const withdrawBodyWire = z.strictObject({ waitSeconds: z.number().int().min(0).max(300).optional() }).optional();

export const healthWire = z.object({ status: z.literal('ok') });

export const errorBodyWire = z.object({
  error: z.object({ code: z.string(), message: z.string(), fix: z.string().optional(), field: z.string().optional() }),
});

/** The error in a response body, when the body is one (a proxy's HTML page is not). */
export function decodeErrorBody(text: string): z.output<typeof errorBodyWire>['error'] | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = errorBodyWire.safeParse(json);
  return parsed.success ? parsed.data.error : undefined;
}

/** POST /v1/leases/:id/checkpoints/:seq/countersign */
export const countersignBodyWire = z.strictObject({ signature: signatureWire });

/** One WebSocket message per log line... */
export const logEntryWire = z.object({ stream: z.enum(['stdout', 'stderr']), time: z.string(), line: z.string() });
/**
 * ...and one last message before the socket closes. end-of-log: the log (or, following, the
 * container) ended; error: the stream failed (`error` says why); shutdown: the daemon is stopping.
 */
export const logEndWire = z.object({
  end: z.literal(true),
  reason: z.enum(['end-of-log', 'error', 'shutdown']),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});
export const logMessageWire = z.union([logEntryWire, logEndWire]);
export type LogEnd = z.output<typeof logEndWire>;
export type LogMessage = z.output<typeof logMessageWire>;

/** `?tail=N&follow=1&since=T` of the log stream. */
export const logQueryWire = z.strictObject({
  tail: z.coerce.number().int().min(0).max(100_000).optional(),
  follow: z.enum(['0', '1', 'true', 'false']).optional().transform((v) => v === '1' || v === 'true'),
  since: z.coerce.number().int().min(0).optional(),
});

/** Lease ids are uint256 decimal; seqs uint64. */
export const leaseIdParam = z.string().regex(DECIMAL, 'expected a lease id (decimal integer)');
export const seqParam = z.string().regex(/^(0|[1-9][0-9]{0,18})$/, 'expected a checkpoint seq (decimal integer)').transform(Number).pipe(z.number().int().max(Number.MAX_SAFE_INTEGER));

// The wire shapes decode to exactly the service's types: a drift on either side fails tsc.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameShapes: [
  Same<z.output<typeof ratesWire>, Rates>,
  Same<z.output<typeof quoteWire>, Quote>,
  Same<z.output<typeof checkpointWire>, Checkpoint>,
  Same<z.output<typeof usageRecordWire>, UsageRecord>,
  Same<z.output<typeof offerWire>, Offer>,
  Same<z.output<typeof quoteResponseWire>, QuoteResponse>,
  Same<z.output<typeof checkpointViewWire>, CheckpointView>,
  Same<z.output<typeof leaseViewWire>, LeaseView>,
  Same<z.output<typeof usageViewWire>, UsageView>,
  Same<z.output<typeof daemonStatusWire>, DaemonStatus>,
  Same<z.output<typeof logEntryWire>, LogEntry>,
  Same<z.output<typeof operatorLeaseSummaryWire>, OperatorLeaseSummary>,
  Same<z.output<typeof operatorLeaseDetailWire>, OperatorLeaseDetail>,
  Same<z.output<typeof earningsWire>, EarningsView>,
  Same<z.output<typeof withdrawResultWire>, WithdrawResult>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];
void sameShapes;
