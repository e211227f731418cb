import type { ProviderConfig } from '../config';
import type { GpuHealthReading } from './types';

export type GpuHealthRules = ProviderConfig['gpu']['health'];

/** `withdraw`: off sale until it reads healthy for recoverAfterSeconds; `fatal`: also ends the leases on it. */
export type HealthSeverity = 'fatal' | 'withdraw';

export type HealthCode =
  | 'gpu-lost'
  | 'xid'
  | 'ecc-uncorrectable'
  | 'pending-retirement'
  | 'remap-failure'
  | 'throttle'
  | 'temperature'
  | 'unreadable'
  | 'passthrough-failed';

export interface HealthFinding {
  code: HealthCode;
  severity: HealthSeverity;
  /** One sentence for the operator and the tenant whose lease it ends. */
  detail: string;
}

/** What one round saw of one GPU. `reading` null: nvidia-smi could not read it (see lost). */
export interface GpuObservation {
  reading: GpuHealthReading | null;
  /** Why there is no reading: the GPU is lost (fatal) or nvidia-smi failed (unreadable). */
  missing?: { code: 'gpu-lost' | 'unreadable'; detail: string };
  /** Xid errors the kernel logged for this GPU since the last round. */
  xids: { xid: number; text: string }[];
}

/**
 * The findings of one round, by the rules. ECC counts since the driver loaded, so a rise since the
 * previous reading is what is new; on the first reading errors already there withdraw the GPU but
 * are not fatal (when they happened, and to whose lease, is unknown).
 */
export function judgeGpu(observation: GpuObservation, previous: GpuHealthReading | undefined, rules: GpuHealthRules): HealthFinding[] {
  const findings: HealthFinding[] = [];
  if (observation.missing) {
    findings.push({ code: observation.missing.code, severity: observation.missing.code === 'gpu-lost' ? 'fatal' : 'withdraw', detail: observation.missing.detail });
  }
  for (const { xid, text } of observation.xids) {
    if (rules.xid.ignore.includes(xid)) continue;
    findings.push({ code: 'xid', severity: rules.xid.fatal.includes(xid) ? 'fatal' : 'withdraw', detail: `Xid ${xid}${text ? `: ${text}` : ''}` });
  }
  const reading = observation.reading;
  if (!reading) return findings;
  const ecc = reading.eccUncorrectableVolatile;
  if (ecc !== null && ecc > 0) {
    const before = previous?.eccUncorrectableVolatile ?? null;
    if (before === null || previous === undefined) {
      findings.push({ code: 'ecc-uncorrectable', severity: 'withdraw', detail: `${ecc} uncorrectable ECC error(s) since the driver loaded` });
    } else if (ecc > before) {
      findings.push({ code: 'ecc-uncorrectable', severity: rules.eccUncorrectable, detail: `uncorrectable ECC errors rose from ${before} to ${ecc}` });
    }
  }
  if (reading.remapFailure) findings.push({ code: 'remap-failure', severity: 'fatal', detail: 'row remapping failed: the GPU has memory it cannot repair and needs service' });
  if (reading.pendingRetirement || reading.remapPending) {
    findings.push({
      code: 'pending-retirement',
      severity: rules.pendingRetirement,
      detail: `${reading.pendingRetirement ? 'pages are pending retirement' : 'rows are pending remapping'}: the GPU needs a reset (\`nvidia-smi -r\`) once idle`,
    });
  }
  const throttled = reading.activeClockEvents.filter((reason) => rules.throttleReasons.includes(reason));
  if (throttled.length > 0) findings.push({ code: 'throttle', severity: 'withdraw', detail: `clocks held down: ${throttled.join(', ')}` });
  if (reading.temperatureCelsius !== null && reading.temperatureCelsius >= rules.maxTemperatureCelsius) {
    findings.push({ code: 'temperature', severity: 'withdraw', detail: `${reading.temperatureCelsius} °C, at or above gpu.health.maxTemperatureCelsius (${rules.maxTemperatureCelsius} °C)` });
  }
  return findings;
}

/**
 * healthy     on sale
 * unhealthy   a rule fired in the last round: off sale
 * recovering  no rule fired since `healthySince`: still off sale until recoverAfterSeconds pass
 */
export type GpuHealthStatus = 'healthy' | 'unhealthy' | 'recovering';

export interface GpuHealthState {
  status: GpuHealthStatus;
  /** What made it unhealthy (kept while recovering, so the operator sees why it is off sale). */
  findings: HealthFinding[];
  /** Unix ms when the status began. */
  since: number;
}

export type HealthEffect =
  | { type: 'withdraw'; reason: string }
  | { type: 'restore' }
  /** Leases on the GPU are told: it is off sale, they run on. */
  | { type: 'warn-leases'; detail: string }
  /** Leases on the GPU end with gpu-failed, billed to `at`. */
  | { type: 'fail-leases'; detail: string; at: number };

export const HEALTHY: GpuHealthState = { status: 'healthy', findings: [], since: 0 };

/** The health state machine of one GPU. Pure: the monitor runs the effects. */
export function nextHealth(state: GpuHealthState, findings: readonly HealthFinding[], now: number, rules: GpuHealthRules): { state: GpuHealthState; effects: HealthEffect[] } {
  if (findings.length > 0) {
    const effects: HealthEffect[] = [];
    if (state.status === 'healthy') effects.push({ type: 'withdraw', reason: reasonOf(findings) });
    const fatal = findings.filter((f) => f.severity === 'fatal');
    const wasFatal = state.status === 'unhealthy' && state.findings.some((f) => f.severity === 'fatal');
    if (fatal.length > 0 && !wasFatal) effects.push({ type: 'fail-leases', detail: reasonOf(fatal), at: now });
    else if (state.status === 'healthy') effects.push({ type: 'warn-leases', detail: reasonOf(findings) });
    const since = state.status === 'unhealthy' ? state.since : now;
    return { state: { status: 'unhealthy', findings: [...findings], since }, effects };
  }
  if (state.status === 'healthy') return { state, effects: [] };
  const healthySince = state.status === 'recovering' ? state.since : now;
  if (now - healthySince >= rules.recoverAfterSeconds * 1000) {
    return { state: { status: 'healthy', findings: [], since: now }, effects: [{ type: 'restore' }] };
  }
  return { state: { status: 'recovering', findings: state.findings, since: healthySince }, effects: [] };
}

/** The reason shown for a GPU off sale. */
export function reasonOf(findings: readonly HealthFinding[]): string {
  return findings.map((f) => `${f.code}: ${f.detail}`).join('; ');
}
