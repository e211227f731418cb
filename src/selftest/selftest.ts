import type { CheckpointView, LeaseView, LogEntry, Offer, UsageView } from '../api';
import { ZERO_BYTES32 } from '../chain';
import { ProviderError, describeError, isProviderError } from '../errors';
import type { EndReason, LeaseState } from '../leases';
import type { Logger } from '../log';
import type { ManifestInput } from '../runtime';
import { LogDigest, resultDigest } from '../settlement';
import type { OpenedLease, TenantClient, VerifiedQuote } from '../tenant';
import { formatBytes } from '../util/bytes';
import type { Clock } from '../util/clock';
import { sleep } from '../util/sleep';
import { ProbeTimeoutError, withTimeout } from '../util/with-timeout';
import { LEASE_STEPS, endReasonFix, fixFor, timeoutFix, type FixFacts, type LeaseStep, type StepKind } from './fixes';
import { buildReport, type SelftestReport, type SelftestStep } from './report';
import { cpuWorkload, gpuWorkload, markerLine } from './workloads';

/** What the selftest needs of a tenant: the protocol client, or a fake of it in unit tests. */
export type SelftestTenant = Pick<
  TenantClient,
  'address' | 'offer' | 'quote' | 'open' | 'lease' | 'logs' | 'usage' | 'verifyUsage' | 'countersign' | 'close' | 'leaseOnChain'
>;

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

interface StepContext {
  signal: AbortSignal;
  /** What was last seen, for the report when the step runs out of time. */
  note(text: string): void;
}

interface StepOutcome<T> {
  value: T;
  detail: string;
}

type LeaseKind = 'cpu' | 'gpu';

/** What one lease carries from step to step. */
interface LeaseRun {
  kind: LeaseKind;
  manifest: ManifestInput;
  nonce: string;
  quote?: VerifiedQuote;
  deposit?: bigint;
  /** The openLease call, kept even when its step timed out: it may still land and must be closed. */
  opening?: Promise<OpenedLease>;
  leaseId?: bigint;
  lines: LogEntry[];
  exitCode?: number;
  usage?: UsageView;
  final?: CheckpointView;
}

const STARTED_STATES: readonly LeaseState[] = ['running', 'stopping', 'finishing', 'settling', 'settled'];
/** How a lease that never ran ends: it shows while the lease still settles, before its terminal state. */
const NEVER_RAN: readonly EndReason[] = ['pull-failed', 'start-failed', 'refused'];

/** How long a close that reverted waits to see the daemon's own close of the lease mined. */
const CLOSE_RACE_MS = 5_000;

function checkFailed(detail: string, fix: string): ProviderError {
  return new ProviderError('SELFTEST_CHECK_FAILED', detail, { fix });
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
  private readonly pollMs: number;
  private deadline = 0;
  private tenantAddress: string | undefined;
  /** The lease under way, for the fixes' facts. */
  private current: LeaseRun | undefined;

  constructor(private readonly options: SelftestOptions) {
    this.pollMs = options.pollIntervalMs ?? 500;
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
      ['quote', (ctx) => this.quote(run, ctx)],
      ['open', () => this.open(run)],
      ['running', (ctx) => this.running(run, ctx)],
      ['logs', (ctx) => this.logs(run, ctx)],
      ['exit', (ctx) => this.exit(run, ctx)],
      ['metering', (ctx) => this.metering(run, ctx)],
      ['checkpoint', (ctx) => this.checkpoint(run, ctx)],
      ['payment', (ctx) => this.payment(run, ctx)],
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

  private async quote(run: LeaseRun, { signal }: StepContext): Promise<StepOutcome<VerifiedQuote>> {
    const quote = await this.options.tenant.quote(run.manifest, signal);
    const { maxRatePerSecond, maxDuration } = quote.quote;
    // Enough for the most a unilateral claim could take: the lease cannot run dry, and what is not
    // used returns to the tenant when it settles.
    run.deposit = maxRatePerSecond * maxDuration;
    run.quote = quote;
    return {
      value: quote,
      detail: `signed quote verified: at most ${maxRatePerSecond} units/s for ${maxDuration} s; deposit ${run.deposit} units`,
    };
  }

  private async open(run: LeaseRun): Promise<StepOutcome<OpenedLease>> {
    const quote = run.quote as VerifiedQuote;
    run.opening = this.options.tenant.open(quote, run.deposit as bigint);
    const opened = await run.opening;
    run.leaseId = opened.leaseId;
    return { value: opened, detail: `lease ${opened.leaseId} opened on-chain (tx ${opened.txHash.slice(0, 10)}...)` };
  }

  private async running(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<LeaseView>> {
    const leaseId = run.leaseId as bigint;
    const view = await this.poll(ctx, async () => {
      const seen = await this.options.tenant.lease(leaseId, ctx.signal);
      ctx.note(`state ${seen.state}`);
      const reason = seen.endReason;
      if (seen.state === 'failed' || seen.state === 'rejected' || (reason !== null && NEVER_RAN.includes(reason))) {
        throw checkFailed(
          `lease ${leaseId} ${reason === 'refused' || seen.state === 'rejected' ? 'was rejected' : 'failed'} before it ran${reason ? `: ${reason}` : ''}`,
          reason ? endReasonFix(reason, this.facts(run)) : 'look at the daemon\'s log for why it rejected the lease',
        );
      }
      return seen.startedAt !== null || STARTED_STATES.includes(seen.state) ? seen : undefined;
    });
    return { value: view, detail: `state ${view.state}${view.container ? `, container ${view.container.status}` : ''}` };
  }

  private async logs(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    run.lines = [];
    for await (const entry of this.options.tenant.logs(leaseId, { follow: true, signal: ctx.signal })) {
      run.lines.push(entry);
      ctx.note(`${run.lines.length} lines streamed, the stream still open`);
    }
    const marker = markerLine(run.nonce);
    const stdout = run.lines.filter((l) => l.stream === 'stdout').map((l) => l.line);
    if (!stdout.includes(marker)) {
      throw checkFailed(
        `the log stream ended after ${run.lines.length} lines without "${marker}"`,
        'the workload\'s output did not reach the log stream: check the engine\'s log driver (docker info) and the daemon\'s log',
      );
    }
    if (run.kind === 'gpu' && !stdout.some((l) => l.startsWith('GPU '))) {
      throw checkFailed(
        `nvidia-smi -L listed no GPU in the container (${stdout.length} stdout lines)`,
        'GPU passthrough does not work: run provider doctor (gpu-passthrough) and fix the NVIDIA container toolkit',
      );
    }
    const gpuLine = run.kind === 'gpu' ? `; ${stdout.find((l) => l.startsWith('GPU '))}` : '';
    return { value: true, detail: `${run.lines.length} lines, "${marker}" among them${gpuLine}` };
  }

  private async exit(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    const view = await this.poll(ctx, async () => {
      const seen = await this.options.tenant.lease(leaseId, ctx.signal);
      ctx.note(`state ${seen.state}, container ${seen.container?.status ?? 'gone'}`);
      const exited = seen.container !== null && !seen.container.running && seen.container.exitCode !== null;
      return exited || seen.endReason !== null ? seen : undefined;
    });
    if (view.endReason !== null && view.endReason !== 'exited') {
      throw checkFailed(`the lease ended by ${view.endReason}, not by its workload exiting`, endReasonFix(view.endReason, this.facts(run)));
    }
    const code = view.container?.exitCode ?? null;
    if (code !== null && code !== 0) {
      const oom = view.container?.oomKilled === true;
      throw checkFailed(
        `the workload exited with ${code}${oom ? ' (out of memory)' : ''}`,
        run.kind === 'gpu'
          ? 'nvidia-smi failed in the container: run provider doctor (gpu-passthrough), or pass another --gpu-image'
          : `the workload needs sh, date and sleep: pass an image that has them with --image (busybox does)`,
      );
    }
    run.exitCode = code ?? 0;
    return {
      value: true,
      detail: code === null ? 'ended (its container is already removed; the final checkpoint shows the exit code)' : 'exited with 0',
    };
  }

  private async metering(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    const view = await this.poll(ctx, async () => {
      const seen = await this.options.tenant.usage(leaseId, ctx.signal);
      ctx.note(`${seen.records.length} usage records, ${seen.checkpoints.length} checkpoints, none final`);
      const last = seen.checkpoints.at(-1);
      return last && last.checkpoint.resultDigest !== ZERO_BYTES32 ? seen : undefined;
    });
    const verified = await this.options.tenant.verifyUsage(view, leaseId);
    const records = view.records.map((r) => r.record);
    if (records.length === 0) throw checkFailed('the lease has no usage records', 'look at the daemon\'s log for the lease\'s metering');
    const cpuMillis = records.reduce((sum, r) => sum + r.cpuMillis, 0n);
    const gpuMillis = records.reduce((sum, r) => sum + r.gpuMillis, 0n);
    if (run.kind === 'cpu' && cpuMillis === 0n) {
      throw checkFailed(
        `${records.length} usage records show no CPU time, though the workload kept a core busy for seconds`,
        'the daemon reads no CPU counters from the container\'s cgroup: run provider doctor (cgroup)',
      );
    }
    if (run.kind === 'gpu' && gpuMillis === 0n) {
      throw checkFailed(`${records.length} usage records show no GPU time for a lease with one GPU`, 'look at the daemon\'s log for the lease\'s GPU allocation');
    }
    run.usage = view;
    run.final = verified.latest;
    const seconds = (ms: bigint): string => (Number(ms) / 1000).toFixed(1);
    const span = records.length > 0 ? Number((records.at(-1)?.t1 ?? 0n) - (records[0]?.t0 ?? 0n)) : 0;
    return {
      value: true,
      detail:
        `${records.length} records over ${span} s: ${seconds(cpuMillis)} CPU-s${run.kind === 'gpu' ? `, ${seconds(gpuMillis)} GPU-s` : ''}, ` +
        `${verified.total} units; amounts, Merkle proofs and signatures verified`,
    };
  }

  private async checkpoint(run: LeaseRun, { signal }: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    const final = run.final as CheckpointView;
    const digest = new LogDigest();
    for (const l of run.lines) digest.add(l.stream, l.line);
    const expected = resultDigest(run.exitCode ?? 0, digest.digest());
    if (final.checkpoint.resultDigest !== expected) {
      throw checkFailed(
        `the final checkpoint does not commit to exit code ${run.exitCode ?? 0} and the ${run.lines.length} log lines streamed`,
        'the daemon\'s result digest disagrees with its own log stream: keep its log and report it',
      );
    }
    await this.options.tenant.countersign(leaseId, final.checkpoint.seq, signal);
    return {
      value: true,
      detail: `final checkpoint #${final.checkpoint.seq} (${final.checkpoint.cumulativeAmount} units) signed by the provider, commits to exit ${run.exitCode ?? 0} and the logs; countersigned`,
    };
  }

  private async payment(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    const owed = (run.final as CheckpointView).checkpoint.cumulativeAmount;
    const chain = await this.poll(ctx, async () => {
      const seen = await this.options.tenant.leaseOnChain(leaseId);
      ctx.note(`paid ${seen.paid} of ${owed}${seen.pending ? `; a unilateral claim is pending until ${seen.pending.payableAt}` : ''}`);
      return seen.paid >= owed ? seen : undefined;
    });
    if (chain.paid !== owed) {
      throw checkFailed(`the chain paid ${chain.paid} for lease ${leaseId}, the final checkpoint says ${owed}`, 'keep the daemon\'s log and report it');
    }
    if (owed === 0n) return { value: true, detail: `lease ${leaseId} cost nothing (the rate card is free): nothing to pay` };
    return { value: true, detail: `paid on-chain: lease ${leaseId} paid ${chain.paid} units, as the final checkpoint says` };
  }

  /**
   * A lease a failed run opened is closed on-chain: the daemon stops its container within one
   * chain poll and the deposit not earned returns to the tenant. An openLease whose step timed out
   * may still land, so it is waited for (within the close's own bound) before giving up on it.
   */
  private async closeAfterFailure(run: LeaseRun): Promise<void> {
    if (!run.opening) return;
    const bound = this.options.closeTimeoutMs ?? 30_000;
    await this.step(
      `${run.kind}.close`,
      'close',
      async ({ signal }) => {
        // An open that failed (reverted, unfunded tenant) left no lease to close.
        const opened = await run.opening?.catch(() => undefined);
        if (!opened) return { value: true, detail: 'no lease was opened' };
        const leaseId = opened.leaseId;
        const maxDuration = (run.quote as VerifiedQuote).quote.maxDuration;
        // leaseEnd is closedAt once closed, else startedAt + maxDuration.
        const closedOnChain = async (): Promise<boolean> => {
          const chain = await this.options.tenant.leaseOnChain(leaseId);
          return chain.end < chain.startedAt + maxDuration;
        };
        const already = { value: true, detail: `lease ${leaseId} is closed on-chain already (the daemon closes a lease that failed)` };
        if (await closedOnChain()) return already;
        try {
          const closed = await this.options.tenant.close(leaseId);
          return { value: true, detail: `closed lease ${leaseId} on-chain (tx ${closed.txHash.slice(0, 10)}...): the daemon stops it, the unused deposit returns` };
        } catch (err) {
          // The daemon's own close may be pending: gas estimation sees it, a read of the latest
          // block does not until it is mined. Give it a few blocks.
          const until = this.options.clock.now() + CLOSE_RACE_MS;
          do {
            if (await closedOnChain()) return already;
            await sleep(this.pollMs, signal);
          } while (this.options.clock.now() < until);
          throw err;
        }
      },
      { budgetMs: bound, detached: true },
    );
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

  /** Polls until `probe` yields a value; its errors count as "not yet" (noted), except a failed check. */
  private async poll<T>(ctx: StepContext, probe: () => Promise<T | undefined>): Promise<T> {
    for (;;) {
      try {
        const value = await probe();
        if (value !== undefined) return value;
      } catch (err) {
        if (isProviderError(err, 'SELFTEST_CHECK_FAILED') || ctx.signal.aborted) throw err;
        ctx.note(`error: ${describeError(err)}`);
      }
      await sleep(this.pollMs, ctx.signal);
    }
  }

  private facts(run?: LeaseRun): FixFacts {
    const image = run?.manifest.image ?? this.options.image;
    return { apiUrl: this.options.apiUrl, image, ...(this.tenantAddress ? { tenant: this.tenantAddress } : {}) };
  }
}

function newRun(kind: LeaseKind, nonce: string, manifest: ManifestInput): LeaseRun {
  return { kind, nonce, manifest, lines: [] };
}

function leaseStepNames(kind: LeaseKind): string[] {
  return LEASE_STEPS.map((step) => `${kind}.${step}`);
}
