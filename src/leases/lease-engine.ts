import { getAddress } from 'ethers';
import type { AllocationLedger } from '../capacity';
import { Wakeup, sleep, usageAmount, ZERO_BYTES32, type MarketplaceEvent } from '../chain';
import type { ProviderConfig } from '../config';
import { ProviderError, describeError, isProviderError } from '../errors';
import type { Logger } from '../log';
import { UsageTimeline, type CumulativeCounters } from '../metering';
import { parseManifest, type ImageService, type LeaseRuntime, type Manifest, type StopReason } from '../runtime';
import { EMPTY_LOGS_SHA256, LogDigest, resultDigest, type Settler } from '../settlement';
import type { Store, StoredLease, StoredQuote } from '../store';
import type { Clock } from '../util/clock';
import type { UsageRecord } from '../vocabulary';
import { Admission, QUOTE_HOLD_GRACE_SECONDS, leaseHolder, quoteHolder } from './admission';
import { TERMINAL_STATES, next, type EndReason, type LeaseEffect, type LeaseEvent, type LeaseSnapshot, type LeaseState } from './state-machine';

/** Reads a running container's cumulative counters by its init pid (ContainerCounterReader fits). */
export interface CounterSource {
  read(pid: number): Promise<CumulativeCounters>;
  forget(pid: number): void;
}

export interface LeaseEngineDeps {
  config: Pick<ProviderConfig, 'metering' | 'settlement' | 'pricing' | 'runtime'>;
  store: Store;
  ledger: AllocationLedger;
  admission: Admission;
  runtime: LeaseRuntime;
  images: ImageService;
  counters: CounterSource;
  settler: Settler;
  /** The provider's address: LeaseOpened for anyone else is not ours. */
  provider: string;
  /** Prefix of this store's leases towards Docker (unique per data dir). */
  instanceId: string;
  clock: Clock;
  log: Logger;
  /**
   * The timestamp of the last block the event follower has handled: every LeaseClosed up to it is
   * known. Usage is billed only up to it, so no record ever ends after a close we have not seen
   * yet (the contract refuses a claim, and a tenant a record, past the lease's end).
   */
  confirmedChainTime?: () => Promise<number | undefined>;
}

const STOP_REASONS: Record<EndReason, StopReason> = {
  exited: 'requested',
  'max-duration': 'max-duration',
  'escrow-exhausted': 'escrow-empty',
  'tenant-closed': 'tenant-closed',
  'operator-drain': 'drain',
  'disk-quota': 'disk-quota',
  'container-vanished': 'requested',
  'pull-failed': 'failed',
  'start-failed': 'failed',
};

/** How often the settlement loop looks at leases (checkpoints due, ended leases to settle). */
const SETTLEMENT_TICK_MS = 1_000;

/**
 * The lease orchestrator. It turns marketplace events and container events into state-machine
 * events, persists each transition (with its reason) before it runs the transition's effects,
 * and feeds the effects' outcomes back as events. Per lease, events are handled one at a time,
 * in order; long effects (pull, start, stop) run in the background and report back.
 *
 * Truth after a restart: Docker for what runs (reconcile by label), SQLite for what was promised
 * and metered, the chain for money (inbox of events not yet acted on, outbox of transactions).
 */
export class LeaseEngine {
  private readonly queues = new Map<string, Promise<void>>();
  private readonly meterLocks = new Map<string, Promise<unknown>>();
  private readonly timelines = new Map<string, UsageTimeline>();
  private readonly imageIds = new Map<string, string>();
  private readonly watching = new Set<string>();
  private readonly leaseAborts = new Map<string, AbortController>();
  private readonly tasks = new Set<Promise<unknown>>();
  private readonly inboxWakeup = new Wakeup();
  private readonly settleWakeup = new Wakeup();
  private controller = new AbortController();
  private loops: Promise<void>[] = [];
  private accepting = true;

  constructor(private readonly deps: LeaseEngineDeps) {}

  get isAccepting(): boolean {
    return this.accepting && !this.controller.signal.aborted;
  }

  runtimeId(leaseId: string): string {
    return `${this.deps.instanceId}-${leaseId}`;
  }

  // ---------------------------------------------------------------- chain events (synchronous)

  /**
   * The event follower's handler: runs inside the follower's SQLite transaction, so it only
   * writes to the store (the lease row and the inbox); the engine acts on the inbox after.
   */
  readonly onChainEvents = (events: readonly MarketplaceEvent[]): void => {
    const { store, clock } = this.deps;
    const now = Math.floor(clock.now() / 1000);
    let any = false;
    for (const event of events) {
      if (event.name === 'LeaseOpened') {
        const args = event.args;
        if (getAddress(args.provider) !== getAddress(this.deps.provider)) continue;
        const leaseId = args.leaseId.toString();
        const quote = store.quotes.get(args.quoteNonce.toString());
        store.leases.insert(
          {
            leaseId,
            runtimeId: this.runtimeId(leaseId),
            quoteNonce: quote ? quote.nonce : null,
            tenant: getAddress(args.tenant),
            manifestHash: args.manifestHash,
            deposit: args.deposit,
            rates: args.rates,
            maxRatePerSecond: args.maxRatePerSecond,
            maxDuration: Number(args.maxDuration),
            openedAt: Number(args.startedAt),
            state: 'quoted',
            endReason: null,
            exitCode: null,
            finalised: false,
            detail: `opened on-chain in block ${event.blockNumber}`,
            closedAt: null,
            containerId: null,
            startedAt: null,
            endedAt: null,
            imageDigest: null,
            timeline: null,
            allocationReleased: false,
            finalUsageDone: false,
            resultDigest: null,
            logsSha256: null,
            chainSettled: false,
            updatedAt: now,
          },
          { fromState: 'quoted', toState: 'quoted', event: 'lease-opened', reason: `LeaseOpened in block ${event.blockNumber}`, at: now },
        );
        store.inbox.add({ name: event.name, leaseId, args: args as unknown as Record<string, unknown>, blockNumber: event.blockNumber, logIndex: event.logIndex });
        any = true;
      } else if (event.name === 'Withdrawn') {
        if (getAddress(event.args.provider) !== getAddress(this.deps.provider)) continue;
        // Counted in the follower's transaction: exactly once, across restarts.
        store.meta.set('withdrawn-total', (BigInt(store.meta.get('withdrawn-total') ?? '0') + event.args.amount).toString());
      } else if (
        event.name === 'LeaseClosed' ||
        event.name === 'CheckpointRedeemed' ||
        event.name === 'ClaimSubmitted' ||
        event.name === 'ClaimFinalized' ||
        event.name === 'LeaseSettled'
      ) {
        const leaseId = event.args.leaseId.toString();
        if (!store.leases.get(leaseId)) continue;
        // The end of billable time is known from here on, before the inbox is worked through.
        if (event.name === 'LeaseClosed') store.leases.update(leaseId, { closedAt: Number(event.args.closedAt) });
        store.inbox.add({ name: event.name, leaseId, args: event.args as unknown as Record<string, unknown>, blockNumber: event.blockNumber, logIndex: event.logIndex });
        any = true;
      }
    }
    if (any) queueMicrotask(() => this.inboxWakeup.wake());
  };

  // ---------------------------------------------------------------- lifecycle

  /** Recovers from the store and Docker, then runs the loops until `stop()`. */
  async start(): Promise<void> {
    this.controller = new AbortController();
    await this.recover();
    const signal = this.controller.signal;
    this.loops = [this.inboxLoop(signal), this.settlementLoop(signal), this.diskLoop(signal)];
  }

  /** Stops taking quotes and every loop; running containers keep running (a restart adopts them). */
  async stop(): Promise<void> {
    this.accepting = false;
    this.controller.abort();
    for (const c of this.leaseAborts.values()) c.abort();
    await Promise.allSettled([...this.loops, ...this.tasks]);
    await Promise.allSettled([...this.queues.values()]);
  }

  /** Operator drain: no new quotes, every lease ended with reason operator-drain. */
  async drain(): Promise<void> {
    this.accepting = false;
    for (const lease of this.deps.store.leases.list({ excludeStates: [...TERMINAL_STATES] })) {
      if (['opened', 'pulling', 'running'].includes(lease.state)) {
        await this.dispatch(lease.leaseId, { type: 'end-requested', reason: 'operator-drain' }, 'the operator drains this provider');
      }
    }
  }

  stopAccepting(): void {
    this.accepting = false;
  }

  // ---------------------------------------------------------------- recovery

  private async recover(): Promise<void> {
    const { store, ledger, runtime, log, clock } = this.deps;
    const now = Math.floor(clock.now() / 1000);
    // Holds: open quotes until their expiry (plus grace), leases until their allocation is released.
    for (const quote of store.quotes.open()) {
      if (quote.expiresAt + QUOTE_HOLD_GRACE_SECONDS <= now) continue;
      ledger.restore([{ holder: quoteHolder(quote.nonce), kind: 'quote', ...holdOf(quote), expiresAt: quote.expiresAt * 1000 }]);
    }
    const unsettled = store.leases.list().filter((l) => !l.chainSettled && l.state !== 'expired');
    const active = unsettled.filter((l) => !TERMINAL_STATES.has(l.state as LeaseState));
    for (const lease of active) {
      if (lease.state === 'quoted' || lease.allocationReleased || !lease.quoteNonce) continue;
      const quote = store.quotes.get(lease.quoteNonce);
      if (quote) ledger.restore([{ holder: leaseHolder(lease.leaseId), kind: 'lease', ...holdOf(quote), expiresAt: null }]);
    }
    const { adopted, missing } = await runtime.reconcile(unsettled.map((l) => l.runtimeId));
    const present = new Map(adopted.map((c) => [c.leaseId, c]));
    const gone = new Set(missing);
    log.info({ leases: active.length, adopted: adopted.length, missing: missing.length }, 'recovering leases from the store and Docker');
    for (const lease of active) {
      const container = present.get(lease.runtimeId);
      switch (lease.state) {
        case 'opened':
          this.background(lease.leaseId, () => this.prepare(lease.leaseId));
          break;
        case 'pulling':
          this.background(lease.leaseId, () => this.startContainer(lease.leaseId));
          break;
        case 'running':
          if (container?.running) {
            log.info({ leaseId: lease.leaseId }, 'adopted a running lease container; metering resumes from its last record');
            this.watch(lease.leaseId);
          } else if (container) {
            await this.reportExit(lease.leaseId);
          } else if (gone.has(lease.runtimeId)) {
            await this.dispatch(lease.leaseId, { type: 'container-vanished' }, 'the container vanished while the daemon was down');
          }
          break;
        case 'stopping':
          if (!lease.finalised) {
            if (container?.running) this.background(lease.leaseId, () => this.stopContainer(lease.leaseId, (lease.endReason ?? 'operator-drain') as EndReason));
            else if (container) await this.reportExit(lease.leaseId);
            else await this.dispatch(lease.leaseId, { type: 'container-vanished' }, 'the container vanished while the daemon was down');
          }
          break;
        default:
          break;
      }
    }
    // Effects a crash may have cut short: final usage and release of what ended.
    for (const lease of store.leases.list().filter((l) => l.finalised && !l.chainSettled)) {
      if (!lease.finalUsageDone) await this.finalUsage(lease.leaseId, (lease.endReason ?? 'exited') as EndReason);
      if (!lease.allocationReleased) this.releaseAllocation(lease.leaseId);
    }
    this.inboxWakeup.wake();
  }

  // ---------------------------------------------------------------- the inbox

  private async inboxLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for (const event of this.deps.store.inbox.open()) {
          if (signal.aborted) break;
          await this.handleInbox(event.name, event.leaseId, event.args);
          this.deps.store.inbox.markHandled(event.id);
        }
      } catch (err) {
        if (!signal.aborted) this.deps.log.error({ err: describeError(err) }, 'handling a marketplace event failed; retrying');
      }
      await this.inboxWakeup.wait(2_000, signal).catch(() => undefined);
    }
  }

  private async handleInbox(name: string, leaseId: string | null, args: Record<string, unknown>): Promise<void> {
    if (!leaseId) return;
    const { store } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease) return;
    switch (name) {
      case 'LeaseOpened':
        if (lease.state === 'quoted') await this.admitOpened(lease);
        return;
      case 'LeaseClosed': {
        const closedAt = Number(args.closedAt as bigint);
        store.leases.update(leaseId, { closedAt });
        const by = getAddress(String(args.by));
        if (by !== getAddress(this.deps.provider)) {
          await this.dispatch(leaseId, { type: 'end-requested', reason: 'tenant-closed' }, `the tenant closed the lease on-chain at ${closedAt}`);
        }
        this.settleWakeup.wake();
        return;
      }
      case 'CheckpointRedeemed':
        store.checkpoints.setStatus(leaseId, Number(args.seq as bigint), 'final');
        return;
      case 'ClaimSubmitted':
        store.checkpoints.setStatus(leaseId, Number(args.seq as bigint), 'claimed');
        return;
      case 'ClaimFinalized':
        store.checkpoints.setStatus(leaseId, Number(args.seq as bigint), 'final');
        this.settleWakeup.wake();
        return;
      case 'LeaseSettled':
        this.settleWakeup.wake();
        return;
      default:
        return;
    }
  }

  /** A LeaseOpened for us: run it only if it is our quote, for this tenant and manifest, with its capacity. */
  private async admitOpened(lease: StoredLease): Promise<void> {
    const { store, ledger, config } = this.deps;
    const quote = lease.quoteNonce ? store.quotes.get(lease.quoteNonce) : undefined;
    const refuse = (detail: string) => this.dispatch(lease.leaseId, { type: 'refused', detail }, detail);
    if (!quote) return void (await refuse('opened with a quote this provider did not issue'));
    if (quote.manifestHash !== lease.manifestHash) return void (await refuse('manifest hash differs from the quoted manifest'));
    if (getAddress(quote.tenant) !== getAddress(lease.tenant)) return void (await refuse('opened by another tenant than the quote names'));
    const minimum = BigInt(quote.allocation.minimumDeposit ?? config.pricing.minimumPerLease);
    if (lease.deposit < minimum) return void (await refuse(`deposit ${lease.deposit} is below this provider's minimum per lease (${minimum})`));
    try {
      ledger.promote(quoteHolder(quote.nonce), leaseHolder(lease.leaseId));
    } catch {
      // The hold lapsed (a late open, or a restart long after): take the capacity again if it is free.
      try {
        const held = ledger.reserve({
          holder: leaseHolder(lease.leaseId),
          cpuMillis: quote.allocation.cpuMillis,
          memoryBytes: quote.allocation.memoryBytes,
          diskBytes: quote.allocation.diskBytes,
          gpus: { count: quote.allocation.gpuUuids.length, model: quote.allocation.gpuModels[0] },
          expiresAt: Number.MAX_SAFE_INTEGER,
        });
        ledger.release(held.holder);
        ledger.restore([{ ...held, kind: 'lease', expiresAt: null }]);
      } catch (err) {
        return void (await refuse(`the quote's capacity is no longer held: ${describeError(err)}`));
      }
    }
    store.quotes.setState(quote.nonce, 'used');
    await this.dispatch(lease.leaseId, { type: 'opened' }, `tenant ${lease.tenant} opened the lease with quote ${quote.quoteHash.slice(0, 10)}`);
  }

  // ---------------------------------------------------------------- transitions and effects

  /** Persists the event's transition, then runs its effects; per lease, one at a time. */
  dispatch(leaseId: string, event: LeaseEvent, reason: string): Promise<void> {
    const previous = this.queues.get(leaseId) ?? Promise.resolve();
    const run = previous.then(() => this.apply(leaseId, event, reason)).catch((err: unknown) => {
      this.deps.log.error({ leaseId, event: event.type, err: describeError(err) }, 'lease event failed');
    });
    this.queues.set(leaseId, run);
    void run.finally(() => {
      if (this.queues.get(leaseId) === run) this.queues.delete(leaseId);
    });
    return run;
  }

  private async apply(leaseId: string, event: LeaseEvent, reason: string): Promise<void> {
    const { store, clock, log } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease) return;
    const snapshot: LeaseSnapshot = {
      state: lease.state as LeaseState,
      endReason: (lease.endReason ?? undefined) as EndReason | undefined,
      exitCode: lease.exitCode,
      finalised: lease.finalised,
    };
    const transition = next(snapshot, event);
    if (!transition.applied) {
      log.debug({ leaseId, state: lease.state, event: event.type }, 'event does not apply in this state');
      return;
    }
    const now = Math.floor(clock.now() / 1000);
    const to = transition.lease;
    store.leases.update(
      leaseId,
      {
        state: to.state,
        endReason: to.endReason ?? null,
        exitCode: to.exitCode ?? null,
        finalised: to.finalised === true,
        detail: reason,
        updatedAt: now,
        ...(event.type === 'container-started' ? { containerId: event.containerId } : {}),
      },
      { fromState: lease.state, toState: to.state, event: event.type, reason, at: now },
    );
    log.info({ leaseId, from: lease.state, to: to.state, event: event.type, reason }, `lease ${to.state}`);
    if (to.finalised) this.leaseAborts.get(leaseId)?.abort();
    for (const effect of transition.effects) await this.runEffect(leaseId, effect);
  }

  private async runEffect(leaseId: string, effect: LeaseEffect): Promise<void> {
    const { store, ledger } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease) return;
    switch (effect.type) {
      case 'release-reservation':
        if (lease.quoteNonce) {
          ledger.release(quoteHolder(lease.quoteNonce));
          ledger.release(leaseHolder(leaseId));
          const quote = store.quotes.get(lease.quoteNonce);
          if (quote?.state === 'open') store.quotes.setState(lease.quoteNonce, 'released');
          this.deps.admission.forgetCredentials(lease.quoteNonce);
        }
        store.leases.update(leaseId, { allocationReleased: true });
        return;
      case 'pull-image':
        this.background(leaseId, () => this.prepare(leaseId));
        return;
      case 'start-container':
        this.background(leaseId, () => this.startContainer(leaseId));
        return;
      case 'stop-container':
        this.background(leaseId, () => this.stopContainer(leaseId, effect.reason));
        return;
      case 'final-usage':
        await this.finalUsage(leaseId, effect.reason);
        return;
      case 'release-allocation':
        this.releaseAllocation(leaseId);
        return;
      case 'settle':
      case 'close-unrun':
        this.settleWakeup.wake();
        return;
    }
  }

  private releaseAllocation(leaseId: string): void {
    const lease = this.deps.store.leases.get(leaseId);
    if (!lease) return;
    this.deps.ledger.release(leaseHolder(leaseId));
    if (lease.quoteNonce) {
      this.deps.ledger.release(quoteHolder(lease.quoteNonce));
      this.deps.admission.forgetCredentials(lease.quoteNonce);
    }
    this.deps.store.leases.update(leaseId, { allocationReleased: true });
  }

  /** Runs a long effect in the background; shutdown aborts and awaits it. */
  private background(leaseId: string, task: () => Promise<void>): void {
    const promise = task().catch((err: unknown) => {
      if (!this.controller.signal.aborted) this.deps.log.error({ leaseId, err: describeError(err) }, 'lease task failed');
    });
    this.tasks.add(promise);
    void promise.finally(() => this.tasks.delete(promise));
  }

  private leaseSignal(leaseId: string): AbortSignal {
    let controller = this.leaseAborts.get(leaseId);
    if (!controller || controller.signal.aborted) {
      controller = new AbortController();
      this.leaseAborts.set(leaseId, controller);
    }
    return AbortSignal.any([controller.signal, this.controller.signal]);
  }

  private manifestOf(lease: StoredLease): { quote: StoredQuote; manifest: Manifest } {
    const quote = this.deps.store.quotes.get(lease.quoteNonce ?? '');
    if (!quote) throw new ProviderError('LEASE_NOT_FOUND', `lease ${lease.leaseId} has no quote of ours`, { input: lease.leaseId });
    const registryAuth = this.deps.admission.registryAuth(quote.nonce);
    return { quote, manifest: parseManifest(registryAuth ? { ...quote.manifest, registryAuth } : quote.manifest) };
  }

  /** Pull (with the network prepared meanwhile), then image-ready or pull-failed. */
  private async prepare(leaseId: string): Promise<void> {
    const { store, images, runtime, log } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease || lease.state !== 'opened') return;
    const signal = this.leaseSignal(leaseId);
    const { quote, manifest } = this.manifestOf(lease);
    let lastProgress = 0;
    try {
      const [prepared] = await Promise.all([
        images.prepare(manifest.image, {
          registryAuth: manifest.registryAuth,
          signal,
          onProgress: (p) => {
            const now = this.deps.clock.now();
            if (now - lastProgress < 2_000) return;
            lastProgress = now;
            log.info({ leaseId, image: p.image, layer: p.layer, status: p.status, current: p.current, total: p.total }, 'pulling image');
          },
        }),
        runtime.prepareNetwork(lease.runtimeId, manifest, signal),
      ]);
      this.imageIds.set(leaseId, prepared.id);
      store.leases.update(leaseId, { imageDigest: prepared.digest });
      await this.dispatch(leaseId, { type: 'image-ready', digest: prepared.digest }, `image ${prepared.digest} ready`);
    } catch (err) {
      if (this.controller.signal.aborted) return;
      let detail = describeError(err);
      if (quote.allocation.registryAuthGiven && !manifest.registryAuth) {
        detail += ' (the registry credentials given with the quote were held in memory only and were lost in a daemon restart)';
      }
      await this.dispatch(leaseId, { type: 'pull-failed', detail }, `pull failed: ${detail}`);
    }
  }

  private async startContainer(leaseId: string): Promise<void> {
    const { store, images, runtime, clock } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease || lease.state !== 'pulling') return;
    const signal = this.leaseSignal(leaseId);
    const { quote, manifest } = this.manifestOf(lease);
    try {
      const imageId = this.imageIds.get(leaseId) ?? (await images.prepare(manifest.image, { registryAuth: manifest.registryAuth, signal })).id;
      const started = await runtime.start({
        manifest,
        imageId,
        signal,
        allocation: {
          leaseId: lease.runtimeId,
          cpuMillis: quote.allocation.cpuMillis,
          memoryBytes: quote.allocation.memoryBytes,
          gpuUuids: quote.allocation.gpuUuids,
          hostPorts: quote.allocation.hostPorts,
        },
      });
      const current = store.leases.get(leaseId);
      if (current?.state !== 'pulling') {
        // Ended while it was starting: it must not run on.
        await runtime.stop(lease.runtimeId, 'requested').catch(() => undefined);
        return;
      }
      const startedAt = Math.max(Math.floor(clock.now() / 1000), lease.openedAt);
      const timeline = UsageTimeline.start(startedAt, quote.allocation.gpuUuids.length);
      this.timelines.set(leaseId, timeline);
      store.leases.update(leaseId, { startedAt, containerId: started.containerId, timeline: timeline.state() });
      await this.dispatch(leaseId, { type: 'container-started', containerId: started.containerId }, `container ${started.containerId.slice(0, 12)} running`);
      this.watch(leaseId);
    } catch (err) {
      if (this.controller.signal.aborted) return;
      const detail = describeError(err);
      await this.dispatch(leaseId, { type: 'start-failed', detail }, `start failed: ${detail}`);
    }
  }

  private async stopContainer(leaseId: string, reason: EndReason): Promise<void> {
    const { store, runtime } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease) return;
    // The last sample while the container's counters still exist.
    await this.sample(leaseId).catch((err: unknown) => this.deps.log.warn({ leaseId, err: describeError(err) }, 'final sample before stop failed'));
    try {
      await runtime.stop(lease.runtimeId, STOP_REASONS[reason], { signal: this.controller.signal });
    } catch (err) {
      if (isProviderError(err, 'CONTAINER_NOT_FOUND')) {
        await this.dispatch(leaseId, { type: 'container-vanished' }, 'the container was gone when it was to be stopped');
        return;
      }
      throw err;
    }
    await this.reportExit(leaseId);
  }

  private async reportExit(leaseId: string): Promise<void> {
    const lease = this.deps.store.leases.get(leaseId);
    if (!lease) return;
    try {
      const exit = await this.deps.runtime.exitReport(lease.runtimeId);
      await this.dispatch(
        leaseId,
        { type: 'container-exited', exitCode: exit.exitCode, oomKilled: exit.oomKilled },
        `container exited with code ${exit.exitCode}${exit.oomKilled ? ' (out of memory)' : ''}`,
      );
    } catch (err) {
      if (isProviderError(err, 'CONTAINER_NOT_FOUND')) await this.dispatch(leaseId, { type: 'container-vanished' }, 'the container is gone');
      else throw err;
    }
  }

  // ---------------------------------------------------------------- metering

  /** Meters a running lease on the interval and waits for its container to end. */
  private watch(leaseId: string): void {
    if (this.watching.has(leaseId)) return;
    this.watching.add(leaseId);
    const signal = this.leaseSignal(leaseId);
    const lease = this.deps.store.leases.get(leaseId);
    if (!lease) return;
    this.background(leaseId, async () => {
      try {
        await this.deps.runtime.wait(lease.runtimeId, { signal });
        await this.reportExit(leaseId);
      } catch (err) {
        if (signal.aborted) return;
        if (isProviderError(err, 'CONTAINER_NOT_FOUND')) await this.dispatch(leaseId, { type: 'container-vanished' }, 'the container disappeared');
        else throw err;
      }
    });
    this.background(leaseId, async () => {
      const intervalMs = this.deps.config.metering.sampleIntervalSeconds * 1000;
      try {
        while (!signal.aborted) {
          await sleep(intervalMs, signal);
          const current = this.deps.store.leases.get(leaseId);
          if (!current || current.state !== 'running') break;
          await this.sample(leaseId).catch((err: unknown) => {
            if (!signal.aborted) this.deps.log.warn({ leaseId, err: describeError(err) }, 'usage sample failed');
          });
          await this.checkLimits(leaseId);
        }
      } catch {
        // aborted
      } finally {
        this.watching.delete(leaseId);
      }
    });
  }

  private async checkLimits(leaseId: string): Promise<void> {
    const lease = this.deps.store.leases.get(leaseId);
    if (!lease || lease.state !== 'running') return;
    const now = Math.floor(this.deps.clock.now() / 1000);
    if (now >= lease.openedAt + lease.maxDuration) {
      await this.dispatch(leaseId, { type: 'end-requested', reason: 'max-duration' }, `maxDuration of ${lease.maxDuration}s reached`);
      return;
    }
    const spent = this.deps.store.usage.forLease(leaseId).reduce((sum, r) => sum + r.amount, 0n);
    if (spent >= lease.deposit) {
      await this.dispatch(leaseId, { type: 'end-requested', reason: 'escrow-exhausted' }, `usage ${spent} reached the deposit ${lease.deposit}`);
    }
  }

  /** The end of billable time: the chain's end of the lease (closedAt, else startedAt + maxDuration). */
  private chainEnd(lease: StoredLease): number {
    return lease.closedAt ?? lease.openedAt + lease.maxDuration;
  }

  private timelineOf(lease: StoredLease): UsageTimeline | undefined {
    let timeline = this.timelines.get(lease.leaseId);
    if (!timeline && lease.timeline) {
      timeline = new UsageTimeline(lease.timeline);
      this.timelines.set(lease.leaseId, timeline);
    }
    return timeline;
  }

  /** One usage sample of a running lease, stored with the timeline state after it. Serialised per lease. */
  sample(leaseId: string): Promise<void> {
    return this.withMeterLock(leaseId, async () => {
      const { store, runtime, counters, clock } = this.deps;
      const lease = store.leases.get(leaseId);
      if (!lease || lease.finalUsageDone) return;
      const timeline = this.timelineOf(lease);
      if (!timeline) return;
      const info = await runtime.inspect(lease.runtimeId);
      if (!info.State.Running || !info.State.Pid) return;
      const sample = await counters.read(info.State.Pid);
      const confirmed = (await this.deps.confirmedChainTime?.()) ?? Number.MAX_SAFE_INTEGER;
      const current = store.leases.get(leaseId) ?? lease;
      const at = Math.min(Math.floor(clock.now() / 1000), this.chainEnd(current), confirmed);
      this.appendInterval(current, timeline, timeline.sample(at, sample));
    });
  }

  private appendInterval(lease: StoredLease, timeline: UsageTimeline, interval: ReturnType<UsageTimeline['sample']>): void {
    if (!interval) return;
    const base = {
      leaseId: BigInt(lease.leaseId),
      seq: BigInt(interval.seq),
      t0: BigInt(interval.t0),
      t1: BigInt(interval.t1),
      cpuMillis: interval.cpuMillis,
      memoryByteSeconds: interval.memoryByteSeconds,
      gpuMillis: interval.gpuMillis,
      rxBytes: interval.rxBytes,
      txBytes: interval.txBytes,
    };
    const record: UsageRecord = { ...base, amount: usageAmount(lease.rates, base) };
    try {
      this.deps.store.usage.append(lease.leaseId, record, timeline.state());
    } catch (err) {
      // The in-memory timeline and the store disagree: the store wins.
      this.timelines.delete(lease.leaseId);
      throw err;
    }
  }

  private withMeterLock<T>(leaseId: string, task: () => Promise<T>): Promise<T> {
    const previous = this.meterLocks.get(leaseId) ?? Promise.resolve();
    const run = previous.then(task, task);
    this.meterLocks.set(leaseId, run.catch(() => undefined));
    return run;
  }

  /** The last usage record (to the exit, or none for a vanished container) and the result digest. */
  private finalUsage(leaseId: string, reason: EndReason): Promise<void> {
    return this.withMeterLock(leaseId, async () => {
      const { store, runtime, clock } = this.deps;
      const lease = store.leases.get(leaseId);
      if (!lease || lease.finalUsageDone) return;
      let endedAt = Math.floor(clock.now() / 1000);
      let logsSha256 = EMPTY_LOGS_SHA256;
      if (reason !== 'container-vanished' && lease.containerId) {
        try {
          const exit = await runtime.exitReport(lease.runtimeId);
          if (exit.finishedAt) endedAt = Math.floor(Date.parse(exit.finishedAt) / 1000);
          const digest = new LogDigest();
          for await (const line of runtime.logs(lease.runtimeId, { follow: false })) digest.add(line.stream, line.text);
          logsSha256 = digest.digest();
        } catch (err) {
          this.deps.log.warn({ leaseId, err: describeError(err) }, 'could not read the exit or logs of the lease container');
        }
      }
      const timeline = this.timelineOf(lease);
      if (timeline && reason !== 'container-vanished') {
        const target = Math.max(endedAt, timeline.state().boundary);
        await this.awaitConfirmedTime(target);
        const current = store.leases.get(leaseId) ?? lease;
        let at = Math.min(target, this.chainEnd(current));
        // Time is billed in whole seconds: a lease that ran and ended within its first second is
        // billed that second (it gets a record, and so a final checkpoint with its result).
        const state = timeline.state();
        if (state.nextSeq === 0 && at <= state.boundary) at = Math.min(state.boundary + 1, this.chainEnd(current));
        if (at > state.boundary) await this.awaitConfirmedTime(at);
        this.appendInterval(current, timeline, timeline.finish(at));
      }
      const digest = resultDigest(lease.exitCode, logsSha256);
      store.leases.update(leaseId, { finalUsageDone: true, endedAt, logsSha256, resultDigest: digest });
      this.timelines.delete(leaseId);
      this.settleWakeup.wake();
    });
  }

  /** Waits (bounded) until the follower has handled the chain up to `at`, so a close before it is known. */
  private async awaitConfirmedTime(at: number): Promise<void> {
    const deadline = this.deps.clock.now() + 30_000;
    while (this.deps.clock.now() < deadline && !this.controller.signal.aborted) {
      const confirmed = await this.deps.confirmedChainTime?.().catch(() => undefined);
      if (confirmed === undefined || confirmed >= at) return;
      await sleep(250, this.controller.signal).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- checkpoints and settlement

  private async settlementLoop(signal: AbortSignal): Promise<void> {
    const { store, settler, log, config, clock } = this.deps;
    while (!signal.aborted) {
      try {
        const now = Math.floor(clock.now() / 1000);
        for (const nonce of store.quotes.expire(now - QUOTE_HOLD_GRACE_SECONDS)) this.deps.ledger.release(quoteHolder(nonce));
        for (const lease of store.leases.list().filter((l) => !l.chainSettled && l.state !== 'expired' && l.state !== 'quoted')) {
          if (signal.aborted) break;
          if (lease.state === 'running') {
            const last = store.checkpoints.forLease(lease.leaseId).at(-1);
            const since = last ? last.createdAt : (lease.startedAt ?? now);
            if (now - since >= config.settlement.checkpointIntervalSeconds) await settler.checkpoint(lease, { final: false });
            continue;
          }
          const ended = lease.finalised ? lease.finalUsageDone : lease.state === 'rejected';
          if (!ended) continue;
          const done = await settler.step(lease, lease.resultDigest ?? ZERO_BYTES32).catch((err: unknown) => {
            log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'settlement step failed; retrying');
            return false;
          });
          if (done) await this.settled(lease);
        }
        await settler.withdrawIfDue().catch((err: unknown) => log.warn({ err: describeError(err) }, 'withdraw check failed'));
      } catch (err) {
        if (!signal.aborted) log.error({ err: describeError(err) }, 'settlement round failed');
      }
      await this.settleWakeup.wait(SETTLEMENT_TICK_MS, signal).catch(() => undefined);
    }
  }

  private async settled(lease: StoredLease): Promise<void> {
    const { store, runtime, log } = this.deps;
    store.leases.update(lease.leaseId, { chainSettled: true });
    if (lease.state === 'stopping') await this.dispatch(lease.leaseId, { type: 'settlement-done' }, 'paid and settled on-chain');
    await runtime.remove(lease.runtimeId).catch((err: unknown) => log.warn({ leaseId: lease.leaseId, err: describeError(err) }, 'could not remove the lease container'));
    log.info({ leaseId: lease.leaseId }, 'lease settled on-chain; container removed');
  }

  private async diskLoop(signal: AbortSignal): Promise<void> {
    await this.deps.runtime
      .watchDisk({
        signal,
        onStopped: (runtimeId) => {
          const lease = this.deps.store.leases.byRuntimeId(runtimeId);
          if (lease) void this.dispatch(lease.leaseId, { type: 'end-requested', reason: 'disk-quota' }, 'the container outgrew its disk quota');
        },
      })
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
