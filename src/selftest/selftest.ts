import type { Offer } from '../api';
import { describeError, isProviderError } from '../errors';
import type { Logger } from '../log';
import type { ManifestInput } from '../runtime';
import { formatBytes } from '../util/bytes';
import type { Clock } from '../util/clock';
import { ProbeTimeoutError, withTimeout } from '../util/with-timeout';
import { LEASE_STEPS, fixFor, timeoutFix, type FixFacts, type LeaseStep, type StepKind } from './fixes';
import { LeaseSteps, checkFailed, newRun, type LeaseKind, type LeaseRun, type SelftestTenant, type StepContext, type StepOutcome } from './lease-steps';
import { buildReport, type SelftestReport, type SelftestStep } from './report';
import { cpuWorkload, gpuWorkload } from './workloads';

export interface SelftestOptions {
  tenant: SelftestTenant;
  clock: Clock;
  log: Logger;
  /** A fresh hex nonce per lease, printed by the workload so only this run's log passes. */
  nonce: () => string;
  /** Where the daemon is, for the report. */
  apiUrl: string;
  image: string;
  gpuImage: string;
  /** False (`--no-gpu`): skip the GPU lease even when GPUs are offered. */
  gpu: boolean;
  /** The daemon's metering interval: the workloads outlive one sample (see workloads.ts). */
  sampleIntervalSeconds: number;
  /** Bound on every step together; closing a lease left open after a failure comes on top. */
  timeoutMs: number;
  /** Bound on closing a lease after a failure. */
  closeTimeoutMs?: number;
  pollIntervalMs?: number;
  /** Aborts the run (SIGINT): the step under way fails, and an opened lease is still closed. */
  signal?: AbortSignal;
}

/**
 * A real lease against this provider from a tenant: quote, open on-chain, watch it run, read its
 * logs, verify its metering and final checkpoint, countersign, and see the provider paid on-chain;
 * then the same on one GPU when the offer has one free. Every step is timed and bounded by one
 * overall deadline; the first failure ends the run (later steps are reported as skipped), and a
 * lease opened by a failed run is closed on-chain so nothing is left running.
 */
export class Selftest {
  private readonly steps: SelftestStep[] = [];
  private readonly lease: LeaseSteps;
  private deadline = 0;
  private tenantAddress: string | undefined;
  /** The lease under way, for the fixes' facts. */
  private current: LeaseRun | undefined;

  constructor(private readonly options: SelftestOptions) {
    this.lease = new LeaseSteps({
      tenant: options.tenant,
      clock: options.clock,
      pollMs: options.pollIntervalMs ?? 500,
      facts: (run) => this.facts(run),
    });
  }

  async run(): Promise<SelftestReport> {
    const { clock } = this.options;
    const started = clock.now();
    this.deadline = started + this.options.timeoutMs;
    this.steps.length = 0;
    await this.runAll();
    return buildReport(this.steps, clock.now() - started);
  }

  private async runAll(): Promise<void> {
    const offer = await this.step('daemon', 'daemon', async ({ signal }) => {
      const found = await this.options.tenant.offer(signal);
      return { value: found, detail: `${this.options.apiUrl} answers: provider ${found.provider}, chain ${found.chainId}` };
    });
    if (!offer) return this.skipRest('daemon', ['offer', ...leaseStepNames('cpu'), 'gpu']);

    this.tenantAddress = await this.options.tenant.address().catch(() => undefined);
    const { sampleIntervalSeconds } = this.options;
    const cpuNonce = this.options.nonce();
    const cpu = newRun('cpu', cpuNonce, cpuWorkload({ image: this.options.image, nonce: cpuNonce, sampleIntervalSeconds }));
    const accepting = await this.step('offer', 'offer', async () => this.checkOffer(offer, cpu.manifest));
    if (!accepting) return this.skipRest('offer', [...leaseStepNames('cpu'), 'gpu']);

    if (!(await this.runLease(cpu))) return this.skip('gpu', 'not run: the CPU lease failed');

    if (!this.options.gpu) return this.skip('gpu', 'skipped: --no-gpu');
    const free = offer.free.gpus.filter((g) => g.count > 0);
    const first = free[0];
    if (!first) {
      return this.skip('gpu', offer.free.gpus.length === 0 ? 'this provider offers no GPUs' : 'no GPU is free now: every one is leased');
    }
    const gpuNonce = this.options.nonce();
    await this.runLease(newRun('gpu', gpuNonce, gpuWorkload({ image: this.options.gpuImage, nonce: gpuNonce, model: first.model, sampleIntervalSeconds })));
  }

  /** The offer must take a lease the size of the CPU workload now. */
  private checkOffer(offer: Offer, manifest: ManifestInput): StepOutcome<true> {
    if (!offer.accepting) {
      throw checkFailed('the daemon is not accepting leases (draining)', 'wait for the drain to end, or restart it: provider start');
    }
    const { cpuMillis, memoryBytes } = manifest.resources;
    if (offer.free.cpuMillis < cpuMillis || offer.free.memoryBytes < memoryBytes) {
      throw checkFailed(
        `too little is free for the selftest lease (${cpuMillis}m CPU, ${formatBytes(memoryBytes)}): ${offer.free.cpuMillis}m CPU, ${formatBytes(offer.free.memoryBytes)} free`,
        'wait for running leases to end (provider status), or lower the reserve in the config',
      );
    }
    if (offer.maxLeaseDurationSeconds < manifest.maxDurationSeconds) {
      throw checkFailed(
        `leases are limited to ${offer.maxLeaseDurationSeconds} s; the selftest lease asks up to ${manifest.maxDurationSeconds} s`,
        `raise admission.maxLeaseDurationSeconds to at least ${manifest.maxDurationSeconds}`,
      );
    }
    const gpus = offer.free.gpus.map((g) => `${g.count}x ${g.model}${g.profile ? ` ${g.profile}` : ''}`).join(', ') || 'none';
    return {
      value: true,
      detail: `accepting; free ${offer.free.cpuMillis}m CPU, ${formatBytes(offer.free.memoryBytes)} memory, GPUs: ${gpus}; max lease ${offer.maxLeaseDurationSeconds} s`,
    };
  }

  /** One lease end to end; true when every step passed. */
  private async runLease(run: LeaseRun): Promise<boolean> {
    this.current = run;
    const name = (step: LeaseStep): string => `${run.kind}.${step}`;
    const steps: [LeaseStep, (ctx: StepContext) => Promise<StepOutcome<unknown>>][] = [
      ['quote', (ctx) => this.lease.quote(run, ctx)],
      ['open', () => this.lease.open(run)],
      ['running', (ctx) => this.lease.running(run, ctx)],
      ['logs', (ctx) => this.lease.logs(run, ctx)],
      ['exit', (ctx) => this.lease.exit(run, ctx)],
      ['metering', (ctx) => this.lease.metering(run, ctx)],
      ['checkpoint', (ctx) => this.lease.checkpoint(run, ctx)],
      ['payment', (ctx) => this.lease.payment(run, ctx)],
    ];
    for (const [i, [step, work]] of steps.entries()) {
      const ok = await this.step(name(step), step, work);
      if (ok !== undefined) continue;
      this.skipRest(name(step), steps.slice(i + 1).map(([later]) => name(later)));
      await this.closeAfterFailure(run);
      return false;
    }
    return true;
  }

  /** Closes a lease a failed run opened, within its own bound and even after an interrupt. */
  private async closeAfterFailure(run: LeaseRun): Promise<void> {
    if (!run.opening) return;
    const bound = this.options.closeTimeoutMs ?? 30_000;
    await this.step(`${run.kind}.close`, 'close', (ctx) => this.lease.close(run, ctx), { budgetMs: bound, detached: true });
  }

  /**
   * Runs one step within the time left (or its own budget), records it, and returns its value,
   * or undefined when it failed.
   */
  private async step<T>(
    name: string,
    kind: StepKind,
    work: (ctx: StepContext) => Promise<StepOutcome<T>>,
    bounds: { budgetMs?: number; detached?: boolean } = {},
  ): Promise<T | undefined> {
    const { clock, log } = this.options;
    const started = clock.now();
    const timeLeft = bounds.budgetMs ?? this.deadline - started;
    // Cleanup after an interrupt must still run: a detached step ignores the run's signal.
    const outer = bounds.detached ? undefined : this.options.signal;
    let lastSeen: string | undefined;
    let record: Omit<SelftestStep, 'ms'>;
    let value: T | undefined;
    try {
      if (timeLeft <= 0) throw new ProbeTimeoutError(name, 0);
      const outcome = await withTimeout(name, timeLeft, (signal) => work({ signal, note: (text) => (lastSeen = text) }), outer);
      value = outcome.value;
      record = { name, status: 'pass', detail: outcome.detail };
    } catch (err) {
      const facts = this.facts(this.current);
      if (err instanceof ProbeTimeoutError) {
        const seconds = Math.max(0, Math.round(timeLeft / 1000));
        record = {
          name,
          status: 'fail',
          detail: `no result within ${seconds} s${bounds.budgetMs === undefined ? ' (the time --timeout left)' : ''}${lastSeen ? `; last seen: ${lastSeen}` : ''}`,
          fix: timeoutFix(kind, facts),
        };
      } else if (outer?.aborted) {
        record = { name, status: 'fail', detail: `interrupted: ${describeError(outer.reason)}`, fix: 'run it again and let it finish' };
      } else {
        record = { name, status: 'fail', detail: describeError(err), fix: isProviderError(err, 'SELFTEST_CHECK_FAILED') && err.fix ? err.fix : fixFor(kind, err, facts) };
      }
    }
    const ms = Math.max(0, Math.round(clock.now() - started));
    const step: SelftestStep = { name, status: record.status, ms, detail: record.detail, ...(record.fix ? { fix: record.fix } : {}) };
    this.steps.push(step);
    log.debug({ step: step.name, status: step.status, ms: step.ms }, `selftest ${step.name}: ${step.status}`);
    return step.status === 'pass' ? value : undefined;
  }

  private skip(name: string, detail: string): void {
    this.steps.push({ name, status: 'skip', ms: 0, detail });
  }

  private skipRest(failed: string, names: readonly string[]): void {
    for (const name of names) this.skip(name, `not run: ${failed} failed`);
  }

  private facts(run?: LeaseRun): FixFacts {
    const image = run?.manifest.image ?? this.options.image;
    return { apiUrl: this.options.apiUrl, image, ...(this.tenantAddress ? { tenant: this.tenantAddress } : {}) };
  }
}

function leaseStepNames(kind: LeaseKind): string[] {
  return LEASE_STEPS.map((step) => `${kind}.${step}`);
}
