import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { LeaseState } from '../leases';
import { LEASE_STATES } from './wire';
import type { GpuHealthStatusView } from './service';

export interface CapacityFigures {
  cpuMillis: number;
  memoryBytes: number;
  gpus: number;
}

export interface EarningsFigures {
  /** Submitted unilateral claims not yet final, plus redeemed amounts not yet withdrawn. */
  claimed: bigint;
  /** Final and withdrawable. */
  finalised: bigint;
  /** Already withdrawn to the provider's wallet. */
  withdrawn: bigint;
}

/** Whether the daemon's dependencies answer, as its own status check found them. */
export interface Reachability {
  rpc: boolean;
  docker: boolean;
  /** Taking new quotes (false while draining or stopping). */
  accepting: boolean;
}

/** The volumes whose free space is exported: the daemon's data dir and the Docker engine's data root. */
export type DiskVolume = 'data_dir' | 'docker_root';

/** Outbox error codes of failed payment transactions, exported at 0 from the start so `increase()` sees the first failure. */
const CLAIM_FAILURE_REASONS = ['TX_REJECTED', 'TX_REVERTED', 'TX_NONCE_TAKEN'] as const;

/**
 * The daemon's Prometheus metrics, in a registry of their own (never prom-client's global one, so
 * two daemons in one test process do not share counters). The engine calls the setters as its
 * state changes; GET /metrics renders. Token amounts are exported as float64 (Prometheus has no
 * other number type): exact up to 2^53 base units, close enough beyond for dashboards; the chain
 * is the ledger.
 */
export class ProviderMetrics {
  readonly registry = new Registry();
  private readonly leases: Gauge<'state'>;
  private readonly earnings: Gauge<'kind'>;
  private readonly cpu: Gauge<'kind'>;
  private readonly memory: Gauge<'kind'>;
  private readonly gpus: Gauge<'kind'>;
  private readonly claimFailures: Counter<'reason'>;
  private readonly meteringLag: Gauge;
  private readonly firewallRestores: Counter;
  private readonly rateLimited: Counter<'action' | 'scope'>;
  private readonly gpuHealthy: Gauge<'uuid' | 'model'>;
  private readonly gpuTemperature: Gauge<'uuid'>;
  private readonly gpuXids: Counter<'uuid'>;
  private readonly xidsCounted = new Map<string, number>();
  private readonly gpuUtilization: Gauge<'uuid'>;
  private readonly gpuMemoryUsed: Gauge<'uuid'>;
  private readonly earned: Counter;
  private earnedSoFar = 0n;
  private readonly rpcUp: Gauge;
  private readonly dockerUp: Gauge;
  private readonly accepting: Gauge;
  private readonly diskFree: Gauge<'volume'>;
  private readonly diskSize: Gauge<'volume'>;
  private readonly claimDeadline: Gauge;

  /** `version`: the daemon's, exported as provider_build_info. */
  constructor(options: { processMetrics?: boolean; version?: string } = {}) {
    const registers = [this.registry];
    this.leases = new Gauge({ name: 'provider_leases', help: 'Leases by state.', labelNames: ['state'], registers });
    this.earnings = new Gauge({
      name: 'provider_earnings_token_base_units',
      help: 'Earnings in token base units: claimed (not yet final), finalised (withdrawable), withdrawn.',
      labelNames: ['kind'],
      registers,
    });
    this.cpu = new Gauge({ name: 'provider_cpu_millis', help: 'CPU in thousandths of a core: allocatable to leases, allocated to quotes and leases.', labelNames: ['kind'], registers });
    this.memory = new Gauge({ name: 'provider_memory_bytes', help: 'Memory: allocatable to leases, allocated to quotes and leases.', labelNames: ['kind'], registers });
    this.gpus = new Gauge({ name: 'provider_gpus', help: 'GPU units: allocatable to leases, allocated to quotes and leases.', labelNames: ['kind'], registers });
    this.claimFailures = new Counter({
      name: 'provider_claim_failures_total',
      help: 'Claim, redeem or withdraw transactions that failed, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.meteringLag = new Gauge({
      name: 'provider_metering_lag_seconds',
      help: 'Age of the oldest running lease\'s last usage sample: how far metering is behind.',
      registers,
    });
    this.firewallRestores = new Counter({
      name: 'provider_firewall_restored_total',
      help: 'Lease firewall rules (and Docker\'s FORWARD hook to them) restored after something else removed them.',
      registers,
    });
    this.rateLimited = new Counter({
      name: 'provider_requests_rate_limited_total',
      help: 'Requests refused with RATE_LIMITED, by action and by the bucket that was empty (tenant or address).',
      labelNames: ['action', 'scope'],
      registers,
    });
    this.gpuHealthy = new Gauge({ name: 'provider_gpu_healthy', help: 'Whether a GPU is healthy and on sale (1) or withdrawn by the health monitor (0).', labelNames: ['uuid', 'model'], registers });
    this.gpuTemperature = new Gauge({ name: 'provider_gpu_temperature_celsius', help: 'GPU temperature at the health monitor\'s last read.', labelNames: ['uuid'], registers });
    this.gpuXids = new Counter({ name: 'provider_gpu_xid_errors_total', help: 'Xid errors the kernel logged for a GPU since the daemon started.', labelNames: ['uuid'], registers });
    this.gpuUtilization = new Gauge({
      name: 'provider_gpu_utilization_ratio',
      help: 'Utilisation (0..1) of each GPU a running lease holds, at its last usage sample; a MIG slice shows its parent GPU\'s (none while MIG is on).',
      labelNames: ['uuid'],
      registers,
    });
    this.gpuMemoryUsed = new Gauge({
      name: 'provider_gpu_memory_used_bytes',
      help: 'Device memory in use on each GPU or MIG slice a running lease holds, at its last usage sample.',
      labelNames: ['uuid'],
      registers,
    });
    this.earned = new Counter({
      name: 'provider_earnings_base_units_total',
      help: 'Token base units earned, as signed checkpoints prove them (each lease\'s capped at its deposit), over every lease of this data dir: paid or not yet.',
      registers,
    });
    this.rpcUp = new Gauge({ name: 'provider_rpc_up', help: '1 when the chain RPC answered the last status check, 0 when not.', registers });
    this.dockerUp = new Gauge({ name: 'provider_docker_up', help: '1 when the Docker engine answered the last status check, 0 when not.', registers });
    this.accepting = new Gauge({ name: 'provider_accepting', help: '1 while the daemon takes new quotes, 0 while draining or stopping.', registers });
    this.diskFree = new Gauge({ name: 'provider_disk_free_bytes', help: 'Bytes free to unprivileged users on the volume of the data dir and of Docker\'s data root.', labelNames: ['volume'], registers });
    this.diskSize = new Gauge({ name: 'provider_disk_size_bytes', help: 'Size of the volume of the data dir and of Docker\'s data root.', labelNames: ['volume'], registers });
    this.claimDeadline = new Gauge({
      name: 'provider_claim_deadline_seconds',
      help: 'Seconds left to claim in full the checkpointed usage not yet paid or claimed, for the lease whose time runs out first (+Inf when nothing is owed; negative: claims are late, paid less 10%, and refused once the late window passes).',
      registers,
    });
    new Gauge({ name: 'provider_build_info', help: 'Always 1; the labels say which daemon build runs.', labelNames: ['version', 'node_version'], registers }).set(
      { version: options.version ?? 'unknown', node_version: process.version },
      1,
    );
    for (const reason of CLAIM_FAILURE_REASONS) this.claimFailures.inc({ reason }, 0);
    this.claimDeadline.set(Infinity);
    for (const state of LEASE_STATES) this.leases.set({ state }, 0);
    this.setEarnings({ claimed: 0n, finalised: 0n, withdrawn: 0n });
    this.meteringLag.set(0);
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'provider_' });
  }

  /** Every state is exported; one left out of `counts` is 0. */
  setLeases(counts: Partial<Record<LeaseState, number>>): void {
    for (const state of LEASE_STATES) this.leases.set({ state }, counts[state] ?? 0);
  }

  setEarnings(earnings: EarningsFigures): void {
    this.earnings.set({ kind: 'claimed' }, Number(earnings.claimed));
    this.earnings.set({ kind: 'finalised' }, Number(earnings.finalised));
    this.earnings.set({ kind: 'withdrawn' }, Number(earnings.withdrawn));
  }

  setCapacity(allocatable: CapacityFigures, allocated: CapacityFigures): void {
    this.cpu.set({ kind: 'allocatable' }, allocatable.cpuMillis);
    this.cpu.set({ kind: 'allocated' }, allocated.cpuMillis);
    this.memory.set({ kind: 'allocatable' }, allocatable.memoryBytes);
    this.memory.set({ kind: 'allocated' }, allocated.memoryBytes);
    this.gpus.set({ kind: 'allocatable' }, allocatable.gpus);
    this.gpus.set({ kind: 'allocated' }, allocated.gpus);
  }

  /** The health monitor's view of each GPU; Xid counts only ever grow, so the counter takes the difference. */
  setGpuHealth(gpus: readonly GpuHealthStatusView[]): void {
    for (const gpu of gpus) {
      this.gpuHealthy.set({ uuid: gpu.uuid, model: gpu.model }, gpu.status === 'healthy' ? 1 : 0);
      if (gpu.temperatureCelsius !== null) this.gpuTemperature.set({ uuid: gpu.uuid }, gpu.temperatureCelsius);
      const counted = this.xidsCounted.get(gpu.uuid) ?? 0;
      this.gpuXids.inc({ uuid: gpu.uuid }, Math.max(0, gpu.xidErrors - counted));
      this.xidsCounted.set(gpu.uuid, Math.max(counted, gpu.xidErrors));
    }
  }

  /** The latest readings of the GPUs running leases hold; a GPU no running lease holds is dropped. */
  setGpuReadings(readings: readonly { uuid: string; utilization: number | null; memoryUsedBytes: number | null }[]): void {
    this.gpuUtilization.reset();
    this.gpuMemoryUsed.reset();
    for (const { uuid, utilization, memoryUsedBytes } of readings) {
      if (utilization !== null) this.gpuUtilization.set({ uuid }, utilization);
      if (memoryUsedBytes !== null) this.gpuMemoryUsed.set({ uuid }, memoryUsedBytes);
    }
  }

  /** `reason`: a short fixed word (an error code such as TX_REVERTED), never free text. */
  claimFailed(reason: string): void {
    this.claimFailures.inc({ reason });
  }

  setMeteringLag(seconds: number): void {
    this.meteringLag.set(Math.max(0, seconds));
  }

  firewallRestored(count: number): void {
    this.firewallRestores.inc(count);
  }

  /** `action` and `scope` are fixed words (quote; tenant or address). */
  requestRateLimited(action: string, scope: 'tenant' | 'address'): void {
    this.rateLimited.inc({ action, scope });
  }

  /**
   * The store's total so far; the counter only moves up. A restarted daemon starts at the same
   * total, so Prometheus sees no reset and `increase()` stays right across restarts.
   */
  setEarned(total: bigint): void {
    if (total <= this.earnedSoFar) return;
    this.earned.inc(Number(total - this.earnedSoFar));
    this.earnedSoFar = total;
  }

  setReachability(reach: Reachability): void {
    this.rpcUp.set(reach.rpc ? 1 : 0);
    this.dockerUp.set(reach.docker ? 1 : 0);
    this.accepting.set(reach.accepting ? 1 : 0);
  }

  /** A volume that could not be measured (a remote Docker engine's root) is left out. */
  setDisk(volume: DiskVolume, space: { freeBytes: number; sizeBytes: number } | undefined): void {
    if (!space) {
      this.diskFree.remove({ volume });
      this.diskSize.remove({ volume });
      return;
    }
    this.diskFree.set({ volume }, space.freeBytes);
    this.diskSize.set({ volume }, space.sizeBytes);
  }

  /** undefined: nothing owed. */
  setClaimDeadline(seconds: number | undefined): void {
    this.claimDeadline.set(seconds ?? Infinity);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
