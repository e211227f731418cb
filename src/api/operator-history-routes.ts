import { z } from 'zod';
import type { Route } from './server';
import { uintWire } from './wire';

/**
 * What the dashboard shows that the CLI's routes do not carry: capacity as the ledger holds it,
 * earnings over time, and the recent failures with what to do about them. Read from the ledger
 * and the store (the daemon layer implements it), like every other operator view.
 */
export interface OperatorHistoryService {
  capacity(): CapacityView;
  earningsHistory(): EarningsHistory;
  recentErrors(): RecentErrors;
}

export interface CapacityAmounts {
  cpuMillis: number;
  memoryBytes: number;
  diskBytes: number;
  gpus: number;
}

export interface CapacityView {
  /** What the daemon offers (allocatable), what quotes and leases hold, and the difference. */
  total: CapacityAmounts;
  allocated: CapacityAmounts;
  free: CapacityAmounts;
  holders: { quotes: number; leases: number };
  /** Each GPU unit offered. Health and readings are null where nothing measured them. */
  gpus: {
    uuid: string;
    kind: 'gpu' | 'mig';
    index: number;
    model: string;
    profile: string | null;
    memoryBytes: number | null;
    heldBy: { kind: 'quote' | 'lease'; holder: string } | null;
    health: string | null;
    utilizationPercent: number | null;
    memoryUsedBytes: number | null;
  }[];
  gpusNotOffered: { index: number; model: string; reason: string; detail: string }[];
  /** When the GPU readings were taken (ISO 8601); null without a reading. */
  readAt: string | null;
}

export interface EarningsHistory {
  /** Running totals over every lease, one point per change, oldest first. Unix seconds; token base units. */
  points: { at: number; earned: bigint; paid: bigint }[];
}

export interface RecentError {
  /** Unix seconds. */
  at: number;
  source: 'transaction' | 'lease';
  code: string;
  message: string;
  fix: string | null;
  leaseId: string | null;
}

export interface RecentErrors {
  /** Newest first. */
  errors: RecentError[];
}

const count = z.number().int().nonnegative();
const figures = z.object({ cpuMillis: count, memoryBytes: count, diskBytes: count, gpus: count });

export const capacityViewWire = z.object({
  total: figures,
  allocated: figures,
  free: figures,
  holders: z.object({ quotes: count, leases: count }),
  gpus: z.array(
    z.object({
      uuid: z.string(),
      kind: z.enum(['gpu', 'mig']),
      index: count,
      model: z.string(),
      profile: z.string().nullable(),
      memoryBytes: count.nullable(),
      heldBy: z.object({ kind: z.enum(['quote', 'lease']), holder: z.string() }).nullable(),
      health: z.string().nullable(),
      utilizationPercent: z.number().min(0).max(100).nullable(),
      memoryUsedBytes: count.nullable(),
    }),
  ),
  gpusNotOffered: z.array(z.object({ index: count, model: z.string(), reason: z.string(), detail: z.string() })),
  readAt: z.string().nullable(),
});

export const earningsHistoryWire = z.object({
  points: z.array(z.object({ at: count, earned: uintWire, paid: uintWire })),
});

export const recentErrorsWire = z.object({
  errors: z.array(
    z.object({
      at: count,
      source: z.enum(['transaction', 'lease']),
      code: z.string(),
      message: z.string(),
      fix: z.string().nullable(),
      leaseId: z.string().nullable(),
    }),
  ),
});

/** GET /v1/operator/capacity, /v1/operator/earnings/history, /v1/operator/errors: this machine only. */
export function operatorHistoryRoutes(history: OperatorHistoryService): Route<never>[] {
  return [
    { method: 'GET', path: '/v1/operator/capacity', auth: 'operator', handler: () => ({ json: z.encode(capacityViewWire, history.capacity()) }) },
    {
      method: 'GET',
      path: '/v1/operator/earnings/history',
      auth: 'operator',
      handler: () => ({ json: z.encode(earningsHistoryWire, history.earningsHistory()) }),
    },
    { method: 'GET', path: '/v1/operator/errors', auth: 'operator', handler: () => ({ json: z.encode(recentErrorsWire, history.recentErrors()) }) },
  ];
}

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameShapes: [
  Same<z.output<typeof capacityViewWire>, CapacityView>,
  Same<z.output<typeof earningsHistoryWire>, EarningsHistory>,
  Same<z.output<typeof recentErrorsWire>, RecentErrors>,
] = [true, true, true];
void sameShapes;
