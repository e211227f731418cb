import type { AllocationLedger } from '../capacity';
import type { ProviderConfig } from '../config';
import { describeError, isProviderError } from '../errors';
import type { Logger } from '../log';
import type { LeaseBackend, LogArchive } from '../runtime';
import { LogDigest, type SettlementRound } from '../settlement';
import type { Store, StoredLease, StoredQuote } from '../store';
import type { Clock } from '../util/clock';
import { HOLDING_STATES } from '../vocabulary';
import { QUOTE_HOLD_GRACE_SECONDS, leaseHolder, quoteHolder, type Admission } from './admission';
import { ChainInbox } from './inbox';
import { LeaseMeter, type MeterDeps } from './meter';
import { LeaseOrchestrator, type EffectExecutors } from './orchestrator';
import { resume, type ObservedWorkload } from './recovery';
import { SettlementLoop, type LeaseSettlement } from './settlement-loop';
import type { LeaseEvent } from './state-machine';
import { LeaseTasks } from './tasks';
import { WorkloadExecutor } from './workload';

export interface LeaseEngineDeps {
  config: Pick<ProviderConfig, 'metering' | 'settlement' | 'pricing' | 'runtime'>;
  store: Store;
  ledger: AllocationLedger;
  admission: Pick<Admission, 'registryAuth' | 'forgetCredentials'>;
  backend: LeaseBackend;
  settlement: LeaseSettlement;
  /** The provider's address: LeaseOpened for anyone else is not ours. */
  provider: string;
  /** Prefix of this store's leases towards the backend (unique per data dir). */
  instanceId: string;
  clock: Clock;
  log: Logger;
  /** Where a lease's logs go before its container is removed; none: they go with it. */
  logArchive?: LogArchive;
  /** See MeterDeps.confirmedChainTime. */
  confirmedChainTime?: () => Promise<number | undefined>;
  /** See MeterDeps.gpus. */
  gpus?: MeterDeps['gpus'];
  /** Bounds on backend calls and waits (tests shorten them). */
  timeouts?: { backendMs?: number; stopGraceMs?: number; confirmWaitMs?: number };
}

/** Leases that still have work: everything not terminal. */
const LIVE_STATES = ['quoted', 'pulling', 'starting', 'running', 'stopping', 'finishing', 'settling'] as const;

/**
 * The lease engine: the chain inbox, the orchestrator (state machine + executor map), the
 * workload executor, the meter and its limit guards, the settlement loop, and recovery, wired
 * together. Truth after a restart: the backend for what runs (reconcile), SQLite for what was
 * promised and metered, the chain for money (inbox of events not yet acted on, outbox of
 * transactions).
 */
export class LeaseEngine {
  private readonly tasks: LeaseTasks;
  private readonly orchestrator: LeaseOrchestrator;
  private readonly inbox: ChainInbox;
  private readonly workload: WorkloadExecutor;
  private readonly meter: LeaseMeter;
  private readonly settlementLoop: SettlementLoop;
  private accepting = true;

  constructor(private readonly deps: LeaseEngineDeps) {
    const { store, clock, log, backend, config } = deps;
    this.tasks = new LeaseTasks(log);
    this.orchestrator = new LeaseOrchestrator({
      store,
      clock,
      log,
      // Once a lease is ending, its pull, start and metering must not run on.
      onTransition: (leaseId, to) => {
        if (to.state === 'finishing' || to.state === 'settling') this.tasks.endLease(leaseId);
      },
    });
    const dispatch = (leaseId: string, event: LeaseEvent, reason: string) => this.orchestrator.dispatch(leaseId, event, reason);
    this.settlementLoop = new SettlementLoop({ config, store, ledger: deps.ledger, settlement: deps.settlement, clock, log, onSettled: (lease, round) => this.settled(lease, round) });
    const wakeSettlement = () => this.settlementLoop.wake();
    this.meter = new LeaseMeter({
      config,
      store,
      backend,
      tasks: this.tasks,
      clock,
      log,
      dispatch,
      onFinal: wakeSettlement,
      confirmedChainTime: deps.confirmedChainTime,
      backendTimeoutMs: deps.timeouts?.backendMs,
      confirmWaitMs: deps.timeouts?.confirmWaitMs,
      gpus: deps.gpus,
    });
    this.workload = new WorkloadExecutor({
      config,
      store,
      admission: deps.admission,
      backend,
      tasks: this.tasks,
      clock,
      log,
      dispatch,
      onStarted: (leaseId, containerId) => this.meter.begin(leaseId, containerId),
      stopGraceMs: deps.timeouts?.stopGraceMs,
    });
    this.inbox = new ChainInbox({ config, store, ledger: deps.ledger, provider: deps.provider, runtimeId: (id) => this.runtimeId(id), clock, log, dispatch, wakeSettlement });
    const executors: EffectExecutors = {
      'pull-image': (leaseId) => this.workload.pull(leaseId),
      'start-container': (leaseId) => this.workload.start(leaseId),
      watch: (leaseId) => {
        this.workload.awaitExit(leaseId);
        this.meter.follow(leaseId);
      },
      'stop-container': (leaseId, effect) => this.workload.stop(leaseId, effect.reason, () => this.meter.sample(leaseId)),
      'release-allocation': (leaseId) => this.releaseAllocation(leaseId),
      'final-usage': (leaseId, effect) => this.meter.finish(leaseId, effect.reason),
      settle: () => wakeSettlement(),
    };
    this.orchestrator.use(executors);
  }

  get isAccepting(): boolean {
    return this.accepting && !this.tasks.signal.aborted;
  }

  runtimeId(leaseId: string): string {
    return `${this.deps.instanceId}-${leaseId}`;
  }

  /** The event follower's handler; see ChainInbox. */
  get onChainEvents(): ChainInbox['onChainEvents'] {
    return this.inbox.onChainEvents;
  }

  dispatch(leaseId: string, event: LeaseEvent, reason: string): Promise<void> {
    return this.orchestrator.dispatch(leaseId, event, reason);
  }

  /** One usage sample of a running lease now (tests and the API's fresh view). */
  sample(leaseId: string): Promise<void> {
    return this.meter.sample(leaseId);
  }

  /** Recovers from the store and the backend, then runs the loops until `stop()`. */
  async start(): Promise<void> {
    this.tasks.restart();
    await this.recover();
    const signal = this.tasks.signal;
    this.tasks.track(this.inbox.run(signal));
    this.tasks.track(this.settlementLoop.run(signal));
    this.tasks.track(this.guardLimits(signal));
    this.tasks.track(this.watchBackend(signal));
    this.tasks.track(this.pruneArchive(signal));
  }

  /** Stops taking quotes and every loop; running workloads keep running (a restart adopts them). */
  async stop(): Promise<void> {
    this.accepting = false;
    await this.tasks.stop();
    await this.orchestrator.idle();
  }

  /** Operator drain: no new quotes, every lease ended with reason operator-drain. */
  async drain(): Promise<void> {
    this.accepting = false;
    for (const lease of this.deps.store.leases.list({ states: ['pulling', 'starting', 'running'] })) {
      await this.dispatch(lease.leaseId, { type: 'end-requested', reason: 'operator-drain' }, 'the operator drains this provider');
    }
  }

  /**
   * A GPU went bad under leases (gpu health). Each lease holding it (or a MIG device of it) is
   * told in its history and the log; when `fatal`, it is ended with gpu-failed and billed no
   * further than `atMs`, when the failure was seen.
   */
  async gpuUnhealthy(gpuUuid: string, detail: string, options: { fatal: boolean; atMs: number }): Promise<string[]> {
    const { store, ledger, log } = this.deps;
    const affected: string[] = [];
    for (const hold of ledger.holdersOfGpu(gpuUuid)) {
      if (hold.kind !== 'lease') continue;
      const leaseId = hold.holder.slice(leaseHolder('').length);
      const lease = store.leases.get(leaseId);
      if (!lease || !['pulling', 'starting', 'running'].includes(lease.state)) continue;
      affected.push(leaseId);
      const event = options.fatal ? 'gpu-failed' : 'gpu-unhealthy';
      store.leases.update(leaseId, {}, { fromState: lease.state, toState: lease.state, event, reason: `GPU ${gpuUuid}: ${detail}`, at: Math.floor(options.atMs / 1000) });
      if (!options.fatal) {
        log.warn({ leaseId, gpuUuid, detail }, 'a GPU of this lease is unhealthy: it is off sale, the lease runs on');
        continue;
      }
      log.error({ leaseId, gpuUuid, detail }, 'a GPU of this lease failed: ending the lease (gpu-failed), billed to the failure');
      this.meter.billUntil(leaseId, Math.floor(options.atMs / 1000));
      await this.dispatch(leaseId, { type: 'end-requested', reason: 'gpu-failed' }, `GPU ${gpuUuid} failed: ${detail}`);
    }
    return affected;
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  private async recover(): Promise<void> {
    const { store, ledger, backend, log, clock } = this.deps;
    const now = Math.floor(clock.now() / 1000);
    // Holds: open quotes until their expiry (plus grace), leases while their state holds capacity.
    for (const quote of store.quotes.open()) {
      if (quote.expiresAt + QUOTE_HOLD_GRACE_SECONDS <= now) continue;
      ledger.restore([{ holder: quoteHolder(quote.nonce), kind: 'quote', ...holdOf(quote), expiresAt: quote.expiresAt * 1000 }]);
    }
    const live = store.leases.list({ states: [...LIVE_STATES] });
    for (const lease of live) {
      if (!HOLDING_STATES.has(lease.state) || !lease.quoteNonce) continue;
      const quote = store.quotes.get(lease.quoteNonce);
      if (quote) ledger.restore([{ holder: leaseHolder(lease.leaseId), kind: 'lease', ...holdOf(quote), expiresAt: null }]);
    }
    const { adopted, missing } = await backend.reconcile(
      live.map((l) => l.runtimeId),
      { signal: this.backendSignal() },
    );
    const observed = new Map<string, ObservedWorkload>([
      ...adopted.map((w) => [w.runtimeId, w.running ? 'running' : 'stopped'] as const),
      ...missing.map((id) => [id, 'missing'] as const),
    ]);
    log.info({ leases: live.length, adopted: adopted.length, missing: missing.length }, 'recovering leases from the store and the backend');
    for (const lease of live) {
      const steps = resume({ state: lease.state, endReason: lease.endReason }, observed.get(lease.runtimeId) ?? 'missing');
      if (lease.state === 'running' && steps.some((s) => s.type === 'run' && s.effect.type === 'watch')) {
        log.info({ leaseId: lease.leaseId }, 'adopted a lease workload; metering resumes from its last record');
      }
      for (const step of steps) {
        if (step.type === 'dispatch') await this.dispatch(lease.leaseId, step.event, step.reason);
        else await this.orchestrator.run(lease.leaseId, step.effect);
      }
    }
    this.inbox.wake();
  }

  /** The bound on one engine-level backend call (reconcile, remove): shutdown or the timeout. */
  private backendSignal(): AbortSignal {
    return this.tasks.within(this.deps.timeouts?.backendMs ?? 60_000);
  }

  private releaseAllocation(leaseId: string): void {
    const { store, ledger, admission } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease) return;
    ledger.release(leaseHolder(leaseId));
    if (lease.quoteNonce) {
      ledger.release(quoteHolder(lease.quoteNonce));
      // A refused lease's quote was never used: it is free again, not open.
      if (store.quotes.get(lease.quoteNonce)?.state === 'open') store.quotes.setState(lease.quoteNonce, 'released');
      admission.forgetCredentials(lease.quoteNonce);
    }
  }

  /**
   * The chain settled the lease: its logs are archived, its workload removed, then it is terminal.
   * An archive or a removal that fails leaves it settling, so the next round tries again (a
   * shutdown mid-way, a wedged engine): a crash between the two finds the archive and removes.
   */
  private async settled(lease: StoredLease, round: SettlementRound): Promise<void> {
    const { backend, log } = this.deps;
    if (!(await this.archiveLogs(lease, round))) return;
    try {
      await backend.remove(lease.runtimeId, { signal: this.backendSignal() });
    } catch (err) {
      if (!this.tasks.signal.aborted) log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'could not remove the lease container; trying again');
      return;
    }
    await this.dispatch(lease.leaseId, { type: 'settlement-done' }, 'paid and settled on-chain');
    log.info({ leaseId: lease.leaseId }, 'lease settled on-chain; container removed');
  }

  /**
   * Keeps the lease's logs before its container goes: true once they are kept, or there is nothing
   * to keep (no container ever ran, archiving is off), or they were already gone (said in the log
   * and in the archive, so the log route explains it). False: try again next round.
   */
  private async archiveLogs(lease: StoredLease, round: SettlementRound): Promise<boolean> {
    const { backend, log, clock } = this.deps;
    const archive = this.deps.logArchive;
    if (!archive?.enabled || !lease.containerId || archive.entry(lease.leaseId)) return true;
    const settledAt = Math.max(Math.floor(clock.now() / 1000), Number(round.now));
    const keepUntil = archive.keepUntil(settledAt, Number(round.challengeWindow));
    const signal = this.backendSignal();
    try {
      const entry = await archive.write(lease.leaseId, backend.logs(lease.runtimeId, { follow: false, signal }), { keepUntil, digest: new LogDigest(), signal });
      if (lease.logsSha256 !== null && entry.logsSha256 !== lease.logsSha256) {
        log.warn({ leaseId: lease.leaseId, archived: entry.logsSha256, final: lease.logsSha256 }, 'the archived logs differ from those the result digest was taken over (the engine rotated or lost lines)');
      }
      log.info({ leaseId: lease.leaseId, lines: entry.lines, bytes: entry.bytes, keepUntil }, 'lease logs archived');
    } catch (err) {
      if (!isProviderError(err, 'CONTAINER_NOT_FOUND')) {
        if (!this.tasks.signal.aborted) log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'could not archive the lease logs; trying again before removing its container');
        return false;
      }
      archive.markLost(lease.leaseId, 'the container was gone before its logs were archived', keepUntil);
      log.warn({ leaseId: lease.leaseId }, 'the lease container was gone before its logs were archived: its logs are lost');
    }
    try {
      archive.prune();
    } catch (err) {
      log.warn({ err: describeError(err) }, 'could not apply the log archive bounds');
    }
    return true;
  }

  /** Applies the archive's bounds at start and hourly: age bounds pass while no lease settles. */
  private async pruneArchive(signal: AbortSignal): Promise<void> {
    const archive = this.deps.logArchive;
    if (!archive) return;
    while (!signal.aborted) {
      try {
        archive.open();
        archive.prune();
      } catch (err) {
        this.deps.log.warn({ err: describeError(err) }, 'could not apply the log archive bounds');
      }
      await this.deps.clock.sleep(3_600_000, signal).catch(() => undefined);
    }
  }

  /** The backend's own limits (the disk quota) end leases through the state machine. */
  private async guardLimits(signal: AbortSignal): Promise<void> {
    await this.deps.backend
      .guardLimits({
        signal,
        onStopped: (runtimeId) => {
          const lease = this.deps.store.leases.byRuntimeId(runtimeId);
          if (lease) void this.dispatch(lease.leaseId, { type: 'end-requested', reason: 'disk-quota' }, 'the container outgrew its disk quota');
        },
      })
      .catch(() => undefined);
  }

  /** When the backend comes back after being lost, what ran may have changed: reconcile again. */
  private async watchBackend(signal: AbortSignal): Promise<void> {
    await this.deps.backend
      .watch(
        (event) => {
          if (event.kind !== 'back') return;
          const live = this.deps.store.leases.list({ states: [...LIVE_STATES] });
          void this.deps.backend
            .reconcile(
              live.map((l) => l.runtimeId),
              { signal: this.backendSignal() },
            )
            .catch((err: unknown) => this.deps.log.warn({ err: describeError(err) }, 'reconcile after the backend came back failed'));
        },
        { signal },
      )
      .catch(() => undefined);
  }
}

function holdOf(quote: StoredQuote): { cpuMillis: number; memoryBytes: number; diskBytes: number; gpuUuids: string[] } {
  return {
    cpuMillis: quote.allocation.cpuMillis,
    memoryBytes: quote.allocation.memoryBytes,
    diskBytes: quote.allocation.diskBytes,
    gpuUuids: [...quote.allocation.gpuUuids],
  };
}
