import { z } from 'zod';
import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import type { GpuInventory } from './types';

/** The one query a utilisation sample runs: every GPU of the machine at once, numbers only. */
export const UTILIZATION_QUERY_ARGS = ['--query-gpu=uuid,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'] as const;

/** One GPU's reading from the CSV query. */
export interface GpuUtilizationRow {
  uuid: string;
  /** 0..1; null when nvidia-smi prints a placeholder (`[N/A]`: MIG mode on, or not supported). */
  utilization: number | null;
  memoryUsedBytes: number | null;
  memoryTotalBytes: number | null;
}

/** What a lease's GPU (or MIG slice) was doing at a sample point. */
export interface GpuReading {
  /** GPU-... or MIG-..., as the lease was allocated it. */
  uuid: string;
  /**
   * For a MIG slice, the GPU it is carved from. nvidia-smi reports utilisation per physical GPU
   * only (and `[N/A]` while MIG is on), so a slice's `utilization` is its parent's figure, if any.
   */
  parentUuid: string | null;
  utilization: number | null;
  memoryUsedBytes: number | null;
  memoryTotalBytes: number | null;
}

const MIB = 1024 * 1024;
/** `[N/A]`, `[Not Supported]`, `[Unknown Error]`, `[Insufficient Permissions]`: no reading. */
const PLACEHOLDER = /^\[[^\]]*\]$|^N\/A$/;

const rowSchema = z.tuple([
  z.string().regex(/^GPU-[0-9a-fA-F-]{36}$/, 'expected a GPU UUID (GPU-...)'),
  z.number().min(0).max(100).nullable(),
  z.number().nonnegative().nullable(),
  z.number().nonnegative().nullable(),
]);

/**
 * Parses `nvidia-smi --query-gpu=uuid,utilization.gpu,memory.used,memory.total
 * --format=csv,noheader,nounits`: one line per GPU, `GPU-<uuid>, 37, 1024, 24564` (percent, MiB,
 * MiB). Throws NVIDIA_SMI_BAD_OUTPUT naming the line that does not fit.
 */
export function parseUtilizationCsv(text: string): GpuUtilizationRow[] {
  const rows: GpuUtilizationRow[] = [];
  for (const [n, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === '') continue;
    const cells = line.split(',').map((cell) => cell.trim());
    const parsed = rowSchema.safeParse([cells[0], ...cells.slice(1).map(numberOrNull)]);
    if (cells.length !== 4 || !parsed.success) {
      throw new ProviderError('NVIDIA_SMI_BAD_OUTPUT', `nvidia-smi --query-gpu line ${n + 1} is not "uuid, utilization, memory.used, memory.total": ${JSON.stringify(line.slice(0, 200))}`, {
        input: line.slice(0, 200),
        fix: 'run the same nvidia-smi --query-gpu command by hand; a driver older than R450 may not know these fields',
      });
    }
    const [uuid, percent, usedMiB, totalMiB] = parsed.data;
    rows.push({
      uuid,
      utilization: percent === null ? null : percent / 100,
      memoryUsedBytes: usedMiB === null ? null : Math.round(usedMiB * MIB),
      memoryTotalBytes: totalMiB === null ? null : Math.round(totalMiB * MIB),
    });
  }
  return rows;
}

function numberOrNull(cell: string): number | null | string {
  if (PLACEHOLDER.test(cell)) return null;
  const value = Number(cell);
  return cell !== '' && Number.isFinite(value) ? value : cell;
}

/** Each MIG slice's memory, from the inventory (`-q -x` joined to `-L`, the only place slices show their use). */
export function migMemoryOf(inventory: GpuInventory): Map<string, { parentUuid: string; usedBytes: number | null; totalBytes: number | null }> {
  const slices = new Map<string, { parentUuid: string; usedBytes: number | null; totalBytes: number | null }>();
  for (const gpu of inventory.devices) {
    for (const device of gpu.mig.devices) {
      if (device.uuid) slices.set(device.uuid, { parentUuid: gpu.uuid, usedBytes: device.memory.usedBytes, totalBytes: device.memory.totalBytes });
    }
  }
  return slices;
}

export interface GpuReadSource {
  /** The CSV query (one nvidia-smi run for every GPU). */
  utilization(signal?: AbortSignal): Promise<GpuUtilizationRow[]>;
  /** The full inventory: asked only when a lease holds a MIG slice. */
  query(signal?: AbortSignal): Promise<{ inventory: GpuInventory }>;
}

export interface GpuSamplerOptions {
  source: GpuReadSource;
  clock: Clock;
  /** A reading younger than this is handed to every lease that samples meanwhile. */
  maxAgeMs: number;
}

interface Cached<T> {
  at: number;
  value: Promise<T>;
}

/**
 * Utilisation of the GPUs leases hold, read at the meter's sample points. Every lease's meter asks
 * for its own UUIDs; one nvidia-smi run answers them all: a run in flight is shared, and its answer
 * is reused while younger than `maxAgeMs`, so N GPU leases cost one run per window, not N. Nothing
 * runs unless a lease with a GPU asks (the CPU-only path never reaches here). The inventory
 * (`-q -x`, slower) is read only for MIG slices, cached the same way.
 */
export class GpuUtilizationSampler {
  private table: Cached<Map<string, GpuUtilizationRow>> | undefined;
  private slices: Cached<ReturnType<typeof migMemoryOf>> | undefined;

  constructor(private readonly options: GpuSamplerOptions) {}

  /**
   * Readings for `uuids`, in that order; a UUID nvidia-smi does not list is left out. Throws the
   * source's errors. The run is shared, so `signal` only stops this caller's wait; the source's
   * own timeout bounds the run.
   */
  async read(uuids: readonly string[], signal?: AbortSignal): Promise<GpuReading[]> {
    if (uuids.length === 0) return [];
    const wantsMig = uuids.some((uuid) => uuid.startsWith('MIG-'));
    const [table, slices] = await untilAborted(Promise.all([this.gpuTable(), wantsMig ? this.migTable() : undefined]), signal);
    const readings: GpuReading[] = [];
    for (const uuid of uuids) {
      const gpu = table.get(uuid);
      if (gpu) {
        readings.push({ uuid, parentUuid: null, utilization: gpu.utilization, memoryUsedBytes: gpu.memoryUsedBytes, memoryTotalBytes: gpu.memoryTotalBytes });
        continue;
      }
      const slice = slices?.get(uuid);
      if (slice) {
        const parent = table.get(slice.parentUuid);
        readings.push({ uuid, parentUuid: slice.parentUuid, utilization: parent?.utilization ?? null, memoryUsedBytes: slice.usedBytes, memoryTotalBytes: slice.totalBytes });
      }
    }
    return readings;
  }

  private gpuTable(): Promise<Map<string, GpuUtilizationRow>> {
    this.table = this.fresh(this.table, () => this.options.source.utilization().then((rows) => new Map(rows.map((row) => [row.uuid, row]))));
    return this.table.value;
  }

  private migTable(): Promise<ReturnType<typeof migMemoryOf>> {
    this.slices = this.fresh(this.slices, () => this.options.source.query().then(({ inventory }) => migMemoryOf(inventory)));
    return this.slices.value;
  }

  private fresh<T>(cached: Cached<T> | undefined, read: () => Promise<T>): Cached<T> {
    const now = this.options.clock.now();
    if (cached && now - cached.at < this.options.maxAgeMs) return cached;
    const entry: Cached<T> = { at: now, value: read() };
    // A failed run is not reused: the next sample tries again.
    entry.value.catch(() => {
      if (this.table === (entry as unknown)) this.table = undefined;
      if (this.slices === (entry as unknown)) this.slices = undefined;
    });
    return entry;
  }
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
