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

  constructor(options: { processMetrics?: boolean } = {}) {
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

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
