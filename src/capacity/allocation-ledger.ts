import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import type { Allocatable, AllocatableGpu } from './types';

/** What a quote or lease holds. GPUs are held by UUID: a GPU (or MIG device) is never held twice. */
export interface Allocation {
  /** The quote's id while quoted; the lease's id once opened. */
  holder: string;
  kind: 'quote' | 'lease';
  cpuMillis: number;
  memoryBytes: number;
  diskBytes: number;
  gpuUuids: string[];
  /** Unix ms after which an unused quote's hold lapses; leases hold until released. */
  expiresAt: number | null;
}

export interface AllocationRequest {
  holder: string;
  cpuMillis: number;
  memoryBytes: number;
  diskBytes: number;
  gpus: { count: number; model?: string | undefined };
  /** Which free units the request's constraints accept (memory, MIG profile...); all when unset. */
  acceptGpu?: (gpu: AllocatableGpu) => boolean;
  expiresAt: number;
}

export interface FreeCapacity {
  cpuMillis: number;
  memoryBytes: number;
  diskBytes: number;
  gpus: AllocatableGpu[];
}

/**
 * What is promised: allocatable capacity minus every open quote and running lease. In memory,
 * decided synchronously, so two requests racing for the last GPU are served one after the other:
 * one gets it, the other a CAPACITY_EXHAUSTED refusal. The store keeps each allocation with its
 * quote or lease; after a restart `restore` rebuilds the ledger from them.
 */
export interface LedgerOptions {
  /**
   * How long a quote's hold outlives its expiry. The chain accepts a quote until expiresAt, and
   * the provider sees the LeaseOpened only `confirmations` blocks and a poll later: without this
   * the hold of a lease already paid for could lapse before it is promoted.
   */
  quoteGraceMs?: number;
}

export class AllocationLedger {
  private allocatable: Allocatable;
  private readonly held = new Map<string, Allocation>();
  private readonly quoteGraceMs: number;
  /** Physical GPU UUID -> why it is off sale (gpu health, passthrough). */
  private withdrawn = new Map<string, string>();

  constructor(
    allocatable: Allocatable,
    private readonly clock: Clock,
    options: LedgerOptions = {},
  ) {
    this.allocatable = allocatable;
    this.quoteGraceMs = options.quoteGraceMs ?? 0;
  }

  /** New detection results. Existing holds stay even if a GPU disappeared: the lease engine decides. */
  updateAllocatable(allocatable: Allocatable): void {
    this.allocatable = allocatable;
  }

  /**
   * The GPUs off sale now (by physical GPU UUID, with why), replacing the previous set. free()
   * leaves them and their MIG devices out at once, and a quote holding one loses its hold: the
   * lease opened with it is refused rather than started on a bad GPU. Returns those quotes' holders.
   */
  withdrawGpus(withdrawn: ReadonlyMap<string, string>): string[] {
    this.withdrawn = new Map(withdrawn);
    const released: string[] = [];
    for (const [holder, allocation] of this.held) {
      if (allocation.kind === 'quote' && allocation.gpuUuids.some((uuid) => this.isWithdrawn(uuid))) {
        this.held.delete(holder);
        released.push(holder);
      }
    }
    return released;
  }

  /** Holds (quotes and leases) on the physical GPU `gpuUuid` or a MIG device of it. */
  holdersOfGpu(gpuUuid: string): Allocation[] {
    return this.list().filter((allocation) => allocation.gpuUuids.some((uuid) => this.physicalGpuOf(uuid) === gpuUuid));
  }

  restore(allocations: readonly Allocation[]): void {
    for (const allocation of allocations) this.held.set(allocation.holder, { ...allocation, gpuUuids: [...allocation.gpuUuids] });
  }

  free(): FreeCapacity {
    this.lapseExpired();
    let cpuMillis = this.allocatable.cpuMillis;
    let memoryBytes = this.allocatable.memoryBytes;
    let diskBytes = this.allocatable.diskBytes;
    const taken = new Set<string>();
    for (const allocation of this.held.values()) {
      cpuMillis -= allocation.cpuMillis;
      memoryBytes -= allocation.memoryBytes;
      diskBytes -= allocation.diskBytes;
      for (const uuid of allocation.gpuUuids) taken.add(uuid);
    }
    const gpus = this.allocatable.gpus.filter(
      (gpu) => !taken.has(gpu.uuid) && !(gpu.kind === 'mig' && taken.has(gpu.gpuUuid)) && !this.withdrawn.has(gpu.gpuUuid),
    );
    return { cpuMillis: Math.max(0, cpuMillis), memoryBytes: Math.max(0, memoryBytes), diskBytes: Math.max(0, diskBytes), gpus };
  }

  /** Holds capacity for a quote until `expiresAt`, or throws CAPACITY_EXHAUSTED naming what is short. */
  reserve(request: AllocationRequest): Allocation {
    if (this.held.has(request.holder)) {
      throw new ProviderError('INTERNAL', `allocation holder ${request.holder} already holds capacity`);
    }
    const free = this.free();
    const short: string[] = [];
    if (request.cpuMillis > free.cpuMillis) short.push(`cpu: asked ${request.cpuMillis}m, free ${free.cpuMillis}m`);
    if (request.memoryBytes > free.memoryBytes) short.push(`memory: asked ${request.memoryBytes} B, free ${free.memoryBytes} B`);
    if (request.diskBytes > free.diskBytes) short.push(`disk: asked ${request.diskBytes} B, free ${free.diskBytes} B`);
    const offered = request.acceptGpu ? free.gpus.filter(request.acceptGpu) : free.gpus;
    const gpus = request.gpus.count > 0 ? pickGpus(offered, request.gpus.count, request.gpus.model) : [];
    if (gpus === undefined) {
      const model = request.gpus.model ? ` matching "${request.gpus.model}"` : '';
      const matching = countMatching(offered, request.gpus.model);
      const alike = largestGroup(offered, request.gpus.model);
      const detail = matching > alike ? ` but at most ${alike} of one model` : '';
      short.push(`gpus: asked ${request.gpus.count}${model}, free ${matching}${detail}`);
    }
    if (short.length > 0) {
      throw new ProviderError('CAPACITY_EXHAUSTED', `not enough free capacity: ${short.join('; ')}`, {
        input: request.holder,
        fix: 'ask for less, or try again when running leases end',
      });
    }
    const allocation: Allocation = {
      holder: request.holder,
      kind: 'quote',
      cpuMillis: request.cpuMillis,
      memoryBytes: request.memoryBytes,
      diskBytes: request.diskBytes,
      gpuUuids: (gpus ?? []).map((gpu) => gpu.uuid),
      expiresAt: request.expiresAt,
    };
    this.held.set(allocation.holder, allocation);
    return { ...allocation, gpuUuids: [...allocation.gpuUuids] };
  }

  /** The tenant opened the lease: the quote's hold becomes the lease's, with no expiry. */
  promote(quoteHolder: string, leaseHolder: string): Allocation {
    const allocation = this.held.get(quoteHolder);
    if (!allocation) {
      throw new ProviderError('CAPACITY_EXHAUSTED', `no capacity is held for quote ${quoteHolder} (it expired or was released)`, {
        input: quoteHolder,
      });
    }
    this.held.delete(quoteHolder);
    const lease: Allocation = { ...allocation, holder: leaseHolder, kind: 'lease', expiresAt: null };
    this.held.set(leaseHolder, lease);
    return { ...lease, gpuUuids: [...lease.gpuUuids] };
  }

  release(holder: string): boolean {
    return this.held.delete(holder);
  }

  get(holder: string): Allocation | undefined {
    this.lapseExpired();
    const allocation = this.held.get(holder);
    return allocation ? { ...allocation, gpuUuids: [...allocation.gpuUuids] } : undefined;
  }

  /** Every hold, for the store, metrics and status. */
  list(): Allocation[] {
    this.lapseExpired();
    return [...this.held.values()].map((allocation) => ({ ...allocation, gpuUuids: [...allocation.gpuUuids] }));
  }

  private physicalGpuOf(uuid: string): string {
    return this.allocatable.gpus.find((gpu) => gpu.uuid === uuid)?.gpuUuid ?? uuid;
  }

  private isWithdrawn(uuid: string): boolean {
    return this.withdrawn.has(this.physicalGpuOf(uuid));
  }

  private lapseExpired(): void {
    const now = this.clock.now();
    for (const [holder, allocation] of this.held) {
      if (allocation.kind === 'quote' && allocation.expiresAt !== null && allocation.expiresAt + this.quoteGraceMs <= now) {
        this.held.delete(holder);
      }
    }
  }
}

function matchesModel(gpu: AllocatableGpu, model: string | undefined): boolean {
  if (model === undefined) return true;
  // A MIG device answers to its card's model and its profile: "A100 3g.20gb" or "3g.20gb".
  const name = gpu.profile ? `${gpu.model} ${gpu.profile}` : gpu.model;
  return name.toLowerCase().includes(model.toLowerCase());
}

function countMatching(gpus: readonly AllocatableGpu[], model: string | undefined): number {
  return gpus.filter((gpu) => matchesModel(gpu, model)).length;
}

function groupByModel(gpus: readonly AllocatableGpu[], model: string | undefined): Map<string, AllocatableGpu[]> {
  const groups = new Map<string, AllocatableGpu[]>();
  for (const gpu of gpus) {
    if (!matchesModel(gpu, model)) continue;
    const key = `${gpu.kind}:${gpu.model}:${gpu.profile ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), gpu]);
  }
  return groups;
}

function largestGroup(gpus: readonly AllocatableGpu[], model: string | undefined): number {
  return Math.max(0, ...[...groupByModel(gpus, model).values()].map((group) => group.length));
}

/**
 * `count` units of one model (a lease's GPUs are alike), whole GPUs before MIG slices, lowest
 * index first so placement is predictable. Undefined when no single model has enough free.
 */
function pickGpus(free: readonly AllocatableGpu[], count: number, model: string | undefined): AllocatableGpu[] | undefined {
  const candidates = [...groupByModel(free, model).entries()]
    .filter(([, gpus]) => gpus.length >= count)
    .sort(([a], [b]) => (a.startsWith('gpu:') === b.startsWith('gpu:') ? a.localeCompare(b) : a.startsWith('gpu:') ? -1 : 1));
  const chosen = candidates[0]?.[1];
  if (!chosen) return undefined;
  return [...chosen].sort((a, b) => a.gpuIndex - b.gpuIndex || (a.migIndex ?? 0) - (b.migIndex ?? 0)).slice(0, count);
}
