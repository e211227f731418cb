import type { GpuReading } from '../capacity';
import type { ProviderConfig } from '../config';
import { describeError } from '../errors';
import type { Logger } from '../log';
import { clampToAllocation, nextRecord } from '../chain';
import { UsageTimeline } from '../metering';
import type { LeaseBackend, WorkloadCounters } from '../runtime';
import { EMPTY_LOGS_SHA256, LogDigest, resultDigest } from '../settlement';
import type { Store, StoredLease } from '../store';
import type { Clock } from '../util/clock';
import type { EndReason } from '../vocabulary';
import { limitBreach } from './limit-guards';
import type { LeaseEvent } from './state-machine';
import type { LeaseTasks } from './tasks';

export interface MeterDeps {
  config: Pick<ProviderConfig, 'metering'>;
  store: Store;
  backend: LeaseBackend;
  tasks: LeaseTasks;
  clock: Clock;
  log: Logger;
  dispatch: (leaseId: string, event: LeaseEvent, reason: string) => Promise<void>;
  /** The settlement loop has work: final usage is stored. */
  onFinal: () => void;
  /**
   * The timestamp of the last block the event follower has handled: every LeaseClosed up to it is
   * known. Usage is billed only up to it, so no record ever ends after a close we have not seen
   * yet (the contract refuses a claim, and a tenant a record, past the lease's end).
   */
  confirmedChainTime?: () => Promise<number | undefined>;
  /** The longest one backend read may take (counters, status, logs): a wedged engine fails it. */
  backendTimeoutMs?: number;
  /** The longest the final record waits for the chain to be confirmed up to the lease's end. */
  confirmWaitMs?: number;
  /**
   * What a GPU lease's GPUs are doing, read beside its counters at each sample and stored with the
   * record (informational). Never asked for a lease without GPUs; absent: no readings.
   */
  gpus?: { read(uuids: readonly string[], signal?: AbortSignal): Promise<GpuReading[]> };
}

/**
 * Turns a running lease's counters into usage records: a sample every metering interval (with the
 * limit guards after each), one more before a stop, and the final record with the result digest
 * once it ended, from the counters the backend kept of its end (what it used after the last
 * sample; read before the settlement removes the workload). Per lease, one metering step at a time; the store holds the timeline, so a
 * restart resumes from the last record.
 */
export class LeaseMeter {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly timelines = new Map<string, UsageTimeline>();
  private readonly following = new Set<string>();
  /** Unix seconds past which a lease is not billed: when its GPU was seen to fail. */
  private readonly billedUntil = new Map<string, number>();

  constructor(private readonly deps: MeterDeps) {}

  /**
   * Bills the lease no further than `atSeconds` (its GPU failed then): the samples while it is
   * stopped and its final record stop there. Kept in memory: a restart mid-stop bills to the stop.
   */
  billUntil(leaseId: string, atSeconds: number): void {
    this.billedUntil.set(leaseId, atSeconds);
  }

  /** The workload started now: its timeline begins (never before the chain's start of the lease). */
  begin(leaseId: string, containerId: string): void {
    const { store, clock } = this.deps;
    const lease = store.leases.get(leaseId);
    const quote = lease?.quoteNonce ? store.quotes.get(lease.quoteNonce) : undefined;
    if (!lease || !quote) return;
    const startedAt = Math.max(Math.floor(clock.now() / 1000), lease.openedAt);
    const timeline = UsageTimeline.start(startedAt, quote.allocation.gpuUuids.length);
    this.timelines.set(leaseId, timeline);
    store.leases.update(leaseId, { startedAt, containerId, timeline: timeline.state() });
  }

  /** Samples on the interval while the lease runs, and ends it when a limit is reached. */
  follow(leaseId: string): void {
    if (this.following.has(leaseId)) return;
    this.following.add(leaseId);
    const { tasks, clock, config, log } = this.deps;
    const signal = tasks.leaseSignal(leaseId);
    tasks.run(leaseId, async () => {
      try {
        while (!signal.aborted) {
          await clock.sleep(config.metering.sampleIntervalSeconds * 1000, signal);
          if (this.deps.store.leases.get(leaseId)?.state !== 'running') break;
          await this.sample(leaseId).catch((err: unknown) => {
            if (!signal.aborted) log.warn({ leaseId, err: describeError(err) }, 'usage sample failed');
          });
          await this.guard(leaseId);
        }
      } catch {
        // aborted
      } finally {
        this.following.delete(leaseId);
      }
    });
  }

  private async guard(leaseId: string): Promise<void> {
    const { store, clock } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease || lease.state !== 'running') return;
    const spent = store.usage.last(leaseId)?.total ?? 0n;
    const breach = limitBreach(lease, spent, Math.floor(clock.now() / 1000));
    if (breach) await this.deps.dispatch(leaseId, { type: 'end-requested', reason: breach.reason }, breach.detail);
  }

  /** One usage sample of a running lease, stored with the timeline state after it. */
  sample(leaseId: string): Promise<void> {
    return this.withLock(leaseId, async () => {
      const { store, backend, clock } = this.deps;
      const lease = store.leases.get(leaseId);
      if (!lease || !['running', 'stopping'].includes(lease.state)) return;
      const timeline = this.timelineOf(lease);
      if (!timeline) return;
      const [counters, gpus] = await Promise.all([backend.counters(lease.runtimeId, { signal: this.callSignal() }), this.readGpus(lease)]);
      if (!counters) return;
      const confirmed = (await this.deps.confirmedChainTime?.()) ?? Number.MAX_SAFE_INTEGER;
      const current = store.leases.get(leaseId) ?? lease;
      const at = Math.min(Math.floor(clock.now() / 1000), chainEnd(current), confirmed, this.billedUntil.get(leaseId) ?? Number.MAX_SAFE_INTEGER);
      this.append(current, timeline, timeline.sample(at, counters), gpus);
    });
  }

  /** The readings of the lease's GPUs; none for a CPU lease (nvidia-smi is not run) or when they cannot be read. */
  private async readGpus(lease: StoredLease): Promise<GpuReading[]> {
    const sampler = this.deps.gpus;
    if (!sampler) return [];
    const uuids = (lease.quoteNonce ? this.deps.store.quotes.get(lease.quoteNonce)?.allocation.gpuUuids : undefined) ?? [];
    if (uuids.length === 0) return [];
    try {
      // Bounded by gpu.utilization.timeoutMs in the sampler; only shutdown stops the wait early.
      return await sampler.read(uuids, this.deps.tasks.signal);
    } catch (err) {
      // Billing does not depend on it: the record is stored without readings.
      this.deps.log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'could not read the utilisation of the lease\'s GPUs; the usage record is stored without it');
      return [];
    }
  }

  /** The last usage record (to the exit, or none for a vanished workload), the result digest, then usage-final. */
  finish(leaseId: string, reason: EndReason): void {
    this.deps.tasks.run(leaseId, async () => {
      await this.withLock(leaseId, () => this.recordFinal(leaseId, reason));
      if (this.deps.store.leases.get(leaseId)?.state === 'finishing') {
        await this.deps.dispatch(leaseId, { type: 'usage-final' }, 'final usage recorded');
        this.deps.onFinal();
      }
    });
  }

  private async recordFinal(leaseId: string, reason: EndReason): Promise<void> {
    const { store, backend, clock, log } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease || lease.state !== 'finishing' || lease.resultDigest !== null) return;
    let endedAt = Math.floor(clock.now() / 1000);
    let logsSha256 = EMPTY_LOGS_SHA256;
    let final: WorkloadCounters | undefined;
    if (reason !== 'container-vanished' && lease.containerId) {
      try {
        const { exit } = await backend.status(lease.runtimeId, { signal: this.callSignal() });
        if (exit?.finishedAt) endedAt = Math.floor(Date.parse(exit.finishedAt) / 1000);
        const digest = new LogDigest();
        for await (const line of backend.logs(lease.runtimeId, { follow: false, signal: this.callSignal() })) digest.add(line.stream, line.text);
        logsSha256 = digest.digest();
      } catch (err) {
        log.warn({ leaseId, err: describeError(err) }, 'could not read the exit or logs of the lease container');
      }
      // What it used after the last sample: read before the settlement removes the workload.
      final = await backend.finalCounters(lease.runtimeId, { signal: this.callSignal() }).catch((err: unknown) => {
        log.warn({ leaseId, err: describeError(err) }, 'could not read the final counters of the lease; billing its use to the last sample');
        return undefined;
      });
    }
    const timeline = this.timelineOf(lease);
    if (timeline && reason !== 'container-vanished') {
      const target = Math.max(endedAt, timeline.state().boundary);
      await this.awaitConfirmedTime(target);
      const current = store.leases.get(leaseId) ?? lease;
      let at = Math.min(target, chainEnd(current), Math.max(state0(timeline), this.billedUntil.get(leaseId) ?? Number.MAX_SAFE_INTEGER));
      // Time is billed in whole seconds: a lease that ran and ended within its first second is
      // billed that second (it gets a record, and so a final checkpoint with its result); so is
      // one that ended within the second of its last sample having used CPU or traffic since.
      const state = timeline.state();
      const unbilled = final !== undefined && timeline.unbilled(final);
      // A lease billed until its GPU failed gets no second past that, unless it has no record at all.
      const capped = this.billedUntil.has(leaseId) && state.nextSeq > 0;
      if ((state.nextSeq === 0 || unbilled) && at <= state.boundary && !capped) at = Math.min(state.boundary + 1, chainEnd(current));
      if (at > state.boundary) await this.awaitConfirmedTime(at);
      this.append(current, timeline, timeline.finish(at, final));
    }
    store.leases.update(leaseId, { endedAt, logsSha256, resultDigest: resultDigest(lease.exitCode, logsSha256) });
    this.timelines.delete(leaseId);
    this.billedUntil.delete(leaseId);
  }

  /** Waits (bounded) until the follower has handled the chain up to `at`, so a close before it is known. */
  private async awaitConfirmedTime(at: number): Promise<void> {
    const { clock, tasks } = this.deps;
    const deadline = clock.now() + (this.deps.confirmWaitMs ?? 30_000);
    while (clock.now() < deadline && !tasks.signal.aborted) {
      const confirmed = await this.deps.confirmedChainTime?.().catch(() => undefined);
      if (confirmed === undefined || confirmed >= at) return;
      await clock.sleep(250, tasks.signal).catch(() => undefined);
    }
  }

  private timelineOf(lease: StoredLease): UsageTimeline | undefined {
    let timeline = this.timelines.get(lease.leaseId);
    if (!timeline && lease.timeline) {
      timeline = new UsageTimeline(lease.timeline);
      this.timelines.set(lease.leaseId, timeline);
    }
    return timeline;
  }

  private append(lease: StoredLease, timeline: UsageTimeline, interval: ReturnType<UsageTimeline['sample']>, gpus: readonly GpuReading[] = []): void {
    if (!interval) return;
    // Billed as measured, but never above the allocation the quote committed: the kernel's
    // accounting can overshoot a CPU limit by a CFS period, and a record above it is disputable.
    const usage = clampToAllocation(lease.allocation, {
      t0: BigInt(interval.t0),
      t1: BigInt(interval.t1),
      cpuMillis: interval.cpuMillis,
      memoryByteSeconds: interval.memoryByteSeconds,
      gpuMillis: interval.gpuMillis,
      rxBytes: interval.rxBytes,
      txBytes: interval.txBytes,
    });
    const record = nextRecord(BigInt(lease.leaseId), this.deps.store.usage.last(lease.leaseId), lease.rates, usage);
    try {
      this.deps.store.usage.append(lease.leaseId, record, timeline.state(), gpus);
    } catch (err) {
      // The in-memory timeline and the store disagree: the store wins.
      this.timelines.delete(lease.leaseId);
      throw err;
    }
  }

  private withLock<T>(leaseId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(leaseId) ?? Promise.resolve();
    const run = previous.then(task, task);
    this.locks.set(leaseId, run.catch(() => undefined));
    return run;
  }

  private callSignal(): AbortSignal {
    return this.deps.tasks.within(this.deps.backendTimeoutMs ?? 30_000);
  }
}

function state0(timeline: UsageTimeline): number {
  return timeline.state().boundary;
}

/** The end of billable time: the chain's end of the lease (closedAt, else startedAt + maxDuration). */
function chainEnd(lease: StoredLease): number {
  return lease.closedAt ?? lease.openedAt + lease.maxDuration;
}
