import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { HEALTHY, judgeGpu, nextHealth, reasonOf, type GpuHealthRules, type GpuHealthState, type GpuHealthStatus, type GpuObservation, type HealthEffect, type HealthFinding } from './gpu-health';
import { lostGpuOf } from './nvidia-smi';
import type { XmlInventory } from './nvidia-smi-xml';
import type { GpuHealthReading } from './types';
import { parseXidLines, pciKey } from './xid-log';

/** A GPU the monitor watches: one the capacity report found at start. */
export interface WatchedGpu {
  index: number;
  uuid: string;
  model: string;
  busId: string | null;
}

/** What `capacity`, `status`, `doctor` and /metrics show of one GPU's health. */
export interface GpuHealthView {
  index: number;
  uuid: string;
  model: string;
  status: GpuHealthStatus;
  /** Why it is off sale; null when healthy. */
  reason: string | null;
  findings: HealthFinding[];
  /** Unix ms when the status began (0: since start). */
  since: number;
  /** Unix ms after which a recovering GPU goes back on sale if it stays healthy. */
  backOnSaleAt: number | null;
  temperatureCelsius: number | null;
  /** Xid errors the kernel logged for it since the daemon started (ignored ones included). */
  xidErrors: number;
}

export interface GpuHealthMonitorDeps {
  gpus: readonly WatchedGpu[];
  /** `nvidia-smi -q -x`, parsed; throws its classified errors. */
  readXml: (signal: AbortSignal) => Promise<XmlInventory>;
  /** The kernel log (dmesg); undefined when Xid errors are not read. */
  readKernelLog?: (signal: AbortSignal) => Promise<string>;
  rules: () => GpuHealthRules;
  clock: Clock;
  log: Logger;
  /** The GPUs off sale now (physical UUID -> why), after every change. */
  onWithdrawn: (withdrawn: ReadonlyMap<string, string>) => void;
  /** Leases on a GPU must be told (warn) or ended (fail). */
  onLeases: (gpuUuid: string, detail: string, options: { fatal: boolean; atMs: number }) => Promise<unknown>;
  /** The driver version nvidia-smi reports changed (an upgrade under a running daemon). */
  onDriverChanged?: (from: string | null, to: string | null) => void;
  /** New Xid errors of a GPU, for the metrics counter. */
  onXid?: (gpuUuid: string, count: number) => void;
}

/**
 * Reads every GPU's health each gpu.health.intervalSeconds and runs the state machine of
 * gpu-health.ts on it. A GPU's state changes here and only here: withdrawn from the ledger at
 * once, put back after recoverAfterSeconds of healthy reads.
 */
export class GpuHealthMonitor {
  private readonly states = new Map<string, GpuHealthState>();
  private readonly readings = new Map<string, GpuHealthReading>();
  private readonly xidCounts = new Map<string, number>();
  private readonly temperatures = new Map<string, number | null>();
  private lastXidAt: number | undefined;
  private kernelLogWarned = false;
  private driverVersion: string | null | undefined;
  private passthroughFailure: string | null = null;

  constructor(private readonly deps: GpuHealthMonitorDeps) {
    for (const gpu of deps.gpus) this.states.set(gpu.uuid, HEALTHY);
  }

  /** Rounds until `signal` aborts; the first at once. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.check(signal).catch((err: unknown) => {
        if (!signal.aborted) this.deps.log.warn({ err: describeError(err) }, 'GPU health round failed');
      });
      await this.deps.clock.sleep(this.deps.rules().intervalSeconds * 1000, signal).catch(() => undefined);
    }
  }

  /**
   * The passthrough check's verdict: a failure withdraws every GPU (no lease could use one) until
   * a later check passes and the GPUs have read healthy for recoverAfterSeconds.
   */
  async setPassthroughFailure(failure: string | null, signal: AbortSignal): Promise<void> {
    if (failure === this.passthroughFailure) return;
    this.passthroughFailure = failure;
    await this.check(signal);
  }

  /** One round: read, judge, move each GPU's state, run the effects. */
  async check(signal: AbortSignal): Promise<void> {
    const { clock, rules: rulesOf, log } = this.deps;
    const rules = rulesOf();
    const observations = await this.observe(signal);
    const now = clock.now();
    const withdrawnBefore = this.withdrawnKey();
    for (const gpu of this.deps.gpus) {
      const observation = observations.get(gpu.uuid);
      if (!observation) continue;
      const findings = judgeGpu(observation, this.readings.get(gpu.uuid), rules);
      if (this.passthroughFailure) findings.push({ code: 'passthrough-failed', severity: 'withdraw', detail: this.passthroughFailure });
      if (observation.reading) {
        this.readings.set(gpu.uuid, observation.reading);
        this.temperatures.set(gpu.uuid, observation.reading.temperatureCelsius);
      }
      const before = this.states.get(gpu.uuid) ?? HEALTHY;
      const { state, effects } = nextHealth(before, findings, now, rules);
      this.states.set(gpu.uuid, state);
      if (state.status !== before.status) {
        const fields = { gpu: gpu.index, uuid: gpu.uuid, from: before.status, to: state.status };
        if (state.status === 'unhealthy') log.warn({ ...fields, reason: reasonOf(findings) }, `GPU ${gpu.index} is unhealthy: off sale`);
        else if (state.status === 'healthy') log.info(fields, `GPU ${gpu.index} read healthy for ${rules.recoverAfterSeconds}s: back on sale`);
        else log.info(fields, `GPU ${gpu.index} reads healthy again: back on sale after ${rules.recoverAfterSeconds}s more of it`);
      }
      await this.apply(gpu, effects);
    }
    if (this.withdrawnKey() !== withdrawnBefore) this.deps.onWithdrawn(this.withdrawn());
  }

  /** Physical GPU UUID -> why it is off sale. */
  withdrawn(): Map<string, string> {
    const withdrawn = new Map<string, string>();
    for (const [uuid, state] of this.states) {
      if (state.status !== 'healthy') withdrawn.set(uuid, `${state.status === 'recovering' ? 'recovering from ' : ''}${reasonOf(state.findings)}`);
    }
    return withdrawn;
  }

  views(): GpuHealthView[] {
    const recoverMs = this.deps.rules().recoverAfterSeconds * 1000;
    return this.deps.gpus.map((gpu) => {
      const state = this.states.get(gpu.uuid) ?? HEALTHY;
      return {
        index: gpu.index,
        uuid: gpu.uuid,
        model: gpu.model,
        status: state.status,
        reason: state.status === 'healthy' ? null : reasonOf(state.findings),
        findings: state.findings,
        since: state.since,
        backOnSaleAt: state.status === 'recovering' ? state.since + recoverMs : null,
        temperatureCelsius: this.temperatures.get(gpu.uuid) ?? null,
        xidErrors: this.xidCounts.get(gpu.uuid) ?? 0,
      };
    });
  }

  private async apply(gpu: WatchedGpu, effects: readonly HealthEffect[]): Promise<void> {
    for (const effect of effects) {
      if (effect.type === 'warn-leases' || effect.type === 'fail-leases') {
        const fatal = effect.type === 'fail-leases';
        await this.deps
          .onLeases(gpu.uuid, effect.detail, { fatal, atMs: fatal ? effect.at : this.deps.clock.now() })
          .catch((err: unknown) => this.deps.log.error({ uuid: gpu.uuid, err: describeError(err) }, 'could not act on the leases of an unhealthy GPU'));
      }
    }
  }

  private async observe(signal: AbortSignal): Promise<Map<string, GpuObservation>> {
    const xids = await this.newXids(signal);
    const observations = new Map<string, GpuObservation>();
    const observe = (gpu: WatchedGpu, reading: GpuHealthReading | null, missing?: GpuObservation['missing']) =>
      observations.set(gpu.uuid, { reading, missing, xids: xids.get(gpu.uuid) ?? [] });
    let xml: XmlInventory;
    try {
      xml = await this.deps.readXml(signal);
    } catch (err) {
      signal.throwIfAborted();
      const lost = lostGpuOf(err);
      for (const gpu of this.deps.gpus) {
        if (lost && (lost.pci === null || (gpu.busId !== null && pciKey(gpu.busId) === pciKey(lost.pci)))) {
          observe(gpu, null, { code: 'gpu-lost', detail: lost.said });
        } else if (!lost) {
          observe(gpu, null, { code: 'unreadable', detail: describeError(err) });
        } else if (xids.has(gpu.uuid)) {
          // Another GPU is lost and nvidia-smi reads none: this one's state stands, its Xids count.
          observe(gpu, this.readings.get(gpu.uuid) ?? null);
        }
      }
      return observations;
    }
    if (this.driverVersion !== undefined && xml.driverVersion !== this.driverVersion) this.deps.onDriverChanged?.(this.driverVersion, xml.driverVersion);
    this.driverVersion = xml.driverVersion;
    const byUuid = new Map(xml.gpus.map((gpu) => [gpu.uuid.toLowerCase(), gpu]));
    for (const gpu of this.deps.gpus) {
      const read = byUuid.get(gpu.uuid.toLowerCase());
      if (read) observe(gpu, read.health);
      else observe(gpu, null, { code: 'gpu-lost', detail: 'nvidia-smi no longer lists this GPU (fallen off the bus?)' });
    }
    return observations;
  }

  /** Xid lines logged since the last round, by GPU. The first round only sets where to count from. */
  private async newXids(signal: AbortSignal): Promise<Map<string, { xid: number; text: string }[]>> {
    const found = new Map<string, { xid: number; text: string }[]>();
    if (!this.deps.readKernelLog) return found;
    let output: string;
    try {
      output = await this.deps.readKernelLog(signal);
    } catch (err) {
      signal.throwIfAborted();
      if (!this.kernelLogWarned) {
        this.kernelLogWarned = true;
        this.deps.log.warn({ err: describeError(err) }, 'cannot read the kernel log, so GPU Xid errors go unseen (run the daemon with CAP_SYSLOG, set kernel.dmesg_restrict=0, or gpu.health.dmesgPath: null to stop trying)');
      }
      return found;
    }
    const events = parseXidLines(output);
    const first = this.lastXidAt === undefined;
    const since = this.lastXidAt ?? Number.NEGATIVE_INFINITY;
    this.lastXidAt = Math.max(since, ...events.map((e) => e.at), first ? 0 : since);
    if (first) return found;
    const byPci = new Map(this.deps.gpus.filter((gpu) => gpu.busId !== null).map((gpu) => [pciKey(gpu.busId!), gpu.uuid]));
    for (const event of events) {
      if (event.at <= since) continue;
      const uuid = byPci.get(event.pci);
      if (!uuid) continue;
      found.set(uuid, [...(found.get(uuid) ?? []), { xid: event.xid, text: event.text }]);
      this.xidCounts.set(uuid, (this.xidCounts.get(uuid) ?? 0) + 1);
      this.deps.onXid?.(uuid, 1);
    }
    return found;
  }

  private withdrawnKey(): string {
    return JSON.stringify([...this.withdrawn()]);
  }
}
