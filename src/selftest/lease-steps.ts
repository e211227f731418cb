import type { CheckpointView, LeaseView, LogEntry, UsageView } from '../api';
import { ceilingRate, ZERO_BYTES32 } from '../chain';
import { ProviderError, describeError, isProviderError } from '../errors';
import type { EndReason, LeaseState } from '../leases';
import type { ManifestInput } from '../runtime';
import { LogDigest, resultDigest } from '../settlement';
import type { OpenedLease, TenantClient, VerifiedQuote } from '../tenant';
import type { Clock } from '../util/clock';
import { sleep } from '../util/sleep';
import { endReasonFix, type FixFacts } from './fixes';
import { markerLine } from './workloads';

/** What the selftest needs of a tenant: the protocol client, or a fake of it in unit tests. */
export type SelftestTenant = Pick<
  TenantClient,
  'address' | 'offer' | 'quote' | 'open' | 'lease' | 'logs' | 'usage' | 'verifyUsage' | 'countersign' | 'close' | 'leaseOnChain'
>;

export interface StepContext {
  signal: AbortSignal;
  /** What was last seen, for the report when the step runs out of time. */
  note(text: string): void;
}

export interface StepOutcome<T> {
  value: T;
  detail: string;
}

export type LeaseKind = 'cpu' | 'gpu';

/** What one lease carries from step to step. */
export interface LeaseRun {
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

export function checkFailed(detail: string, fix: string): ProviderError {
  return new ProviderError('SELFTEST_CHECK_FAILED', detail, { fix });
}

export function newRun(kind: LeaseKind, nonce: string, manifest: ManifestInput): LeaseRun {
  return { kind, nonce, manifest, lines: [] };
}

export interface LeaseStepsDeps {
  tenant: SelftestTenant;
  clock: Clock;
  pollMs: number;
  /** What the fixes may name: the daemon, the image, the tenant. */
  facts: (run: LeaseRun) => FixFacts;
}

/**
 * The checks of one lease, step by step: each takes what the steps before it left on the run,
 * checks what the tenant sees, and leaves its findings for the next.
 */
export class LeaseSteps {
  constructor(private readonly deps: LeaseStepsDeps) {}

  async quote(run: LeaseRun, { signal }: StepContext): Promise<StepOutcome<VerifiedQuote>> {
    const quote = await this.deps.tenant.quote(run.manifest, signal);
    const { rates, allocation, maxDuration } = quote.quote;
    // Enough for the most a unilateral claim could take (rates × allocation over the whole lease):
    // the lease cannot run dry, and what is not used returns to the tenant when it settles.
    run.deposit = ceilingRate(rates, allocation) * maxDuration;
    run.quote = quote;
    return {
      value: quote,
      detail: `signed quote verified: at most ${ceilingRate(rates, allocation)} units/s for ${maxDuration} s; deposit ${run.deposit} units`,
    };
  }

  async open(run: LeaseRun): Promise<StepOutcome<OpenedLease>> {
    const quote = run.quote as VerifiedQuote;
    run.opening = this.deps.tenant.open(quote, run.deposit as bigint);
    const opened = await run.opening;
    run.leaseId = opened.leaseId;
    return { value: opened, detail: `lease ${opened.leaseId} opened on-chain (tx ${opened.txHash.slice(0, 10)}...)` };
  }

  async running(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<LeaseView>> {
    const leaseId = run.leaseId as bigint;
    const view = await this.poll(ctx, async () => {
      const seen = await this.deps.tenant.lease(leaseId, ctx.signal);
      ctx.note(`state ${seen.state}`);
      const reason = seen.endReason;
      if (seen.state === 'failed' || seen.state === 'rejected' || (reason !== null && NEVER_RAN.includes(reason))) {
        throw checkFailed(
          `lease ${leaseId} ${reason === 'refused' || seen.state === 'rejected' ? 'was rejected' : 'failed'} before it ran${reason ? `: ${reason}` : ''}`,
          reason ? endReasonFix(reason, this.deps.facts(run)) : 'look at the daemon\'s log for why it rejected the lease',
        );
      }
      return seen.startedAt !== null || STARTED_STATES.includes(seen.state) ? seen : undefined;
    });
    return { value: view, detail: `state ${view.state}${view.container ? `, container ${view.container.status}` : ''}` };
  }

  async logs(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    run.lines = [];
    for await (const entry of this.deps.tenant.logs(leaseId, { follow: true, signal: ctx.signal })) {
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

  async exit(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    const view = await this.poll(ctx, async () => {
      const seen = await this.deps.tenant.lease(leaseId, ctx.signal);
      ctx.note(`state ${seen.state}, container ${seen.container?.status ?? 'gone'}`);
      const exited = seen.container !== null && !seen.container.running && seen.container.exitCode !== null;
      return exited || seen.endReason !== null ? seen : undefined;
    });
    if (view.endReason !== null && view.endReason !== 'exited') {
      throw checkFailed(`the lease ended by ${view.endReason}, not by its workload exiting`, endReasonFix(view.endReason, this.deps.facts(run)));
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

  async metering(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    const view = await this.poll(ctx, async () => {
      const seen = await this.deps.tenant.usage(leaseId, ctx.signal);
      ctx.note(`${seen.records.length} usage records, ${seen.checkpoints.length} checkpoints, none final`);
      const last = seen.checkpoints.at(-1);
      return last && last.checkpoint.resultDigest !== ZERO_BYTES32 ? seen : undefined;
    });
    const verified = await this.deps.tenant.verifyUsage(view, leaseId);
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

  async checkpoint(run: LeaseRun, { signal }: StepContext): Promise<StepOutcome<true>> {
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
    await this.deps.tenant.countersign(leaseId, final.seq, signal);
    return {
      value: true,
      detail: `final checkpoint #${final.seq} (${final.checkpoint.cumulativeAmount} units) signed by the provider, commits to exit ${run.exitCode ?? 0} and the logs; countersigned`,
    };
  }

  async payment(run: LeaseRun, ctx: StepContext): Promise<StepOutcome<true>> {
    const leaseId = run.leaseId as bigint;
    const owed = (run.final as CheckpointView).checkpoint.cumulativeAmount;
    const chain = await this.poll(ctx, async () => {
      const seen = await this.deps.tenant.leaseOnChain(leaseId);
      ctx.note(`paid ${seen.paid} of ${owed}${seen.payableAt !== 0n ? `; a unilateral claim is pending until ${seen.payableAt}` : ''}`);
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
  async close(run: LeaseRun, { signal }: StepContext): Promise<StepOutcome<true>> {
    // An open that failed (reverted, unfunded tenant) left no lease to close.
    const opened = await run.opening?.catch(() => undefined);
    if (!opened) return { value: true, detail: 'no lease was opened' };
    const leaseId = opened.leaseId;
    const maxDuration = (run.quote as VerifiedQuote).quote.maxDuration;
    // end is when it was closed, else startedAt + maxDuration (0 once settled: closed too).
    const closedOnChain = async (): Promise<boolean> => {
      const chain = await this.deps.tenant.leaseOnChain(leaseId);
      return chain.end < chain.terms.startedAt + maxDuration;
    };
    const already: StepOutcome<true> = { value: true, detail: `lease ${leaseId} is closed on-chain already (the daemon closes a lease that failed)` };
    if (await closedOnChain()) return already;
    try {
      const closed = await this.deps.tenant.close(leaseId);
      return { value: true, detail: `closed lease ${leaseId} on-chain (tx ${closed.txHash.slice(0, 10)}...): the daemon stops it, the unused deposit returns` };
    } catch (err) {
      // The daemon's own close may be pending: gas estimation sees it, a read of the latest
      // block does not until it is mined. Give it a few blocks.
      const until = this.deps.clock.now() + CLOSE_RACE_MS;
      do {
        if (await closedOnChain()) return already;
        await sleep(this.deps.pollMs, signal);
      } while (this.deps.clock.now() < until);
      throw err;
    }
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
      await sleep(this.deps.pollMs, ctx.signal);
    }
  }
}
