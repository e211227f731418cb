import type { ProviderConfig } from '../config';
import { ProviderError, describeError, isProviderError } from '../errors';
import type { Logger } from '../log';
import { parseManifest, type LeaseBackend, type Manifest, type StopReason } from '../runtime';
import type { Store, StoredLease, StoredQuote } from '../store';
import type { Clock } from '../util/clock';
import type { EndReason } from '../vocabulary';
import type { Admission } from './admission';
import type { LeaseEvent } from './state-machine';
import type { LeaseTasks } from './tasks';

const STOP_REASONS: Record<EndReason, StopReason> = {
  exited: 'requested',
  'max-duration': 'max-duration',
  'escrow-exhausted': 'escrow-empty',
  'tenant-closed': 'tenant-closed',
  'operator-drain': 'drain',
  'disk-quota': 'disk-quota',
  'gpu-failed': 'failed',
  'container-vanished': 'requested',
  'pull-failed': 'failed',
  'start-failed': 'failed',
  refused: 'failed',
};

export interface WorkloadDeps {
  config: Pick<ProviderConfig, 'runtime'>;
  store: Store;
  admission: Pick<Admission, 'registryAuth'>;
  backend: LeaseBackend;
  tasks: LeaseTasks;
  clock: Clock;
  log: Logger;
  dispatch: (leaseId: string, event: LeaseEvent, reason: string) => Promise<void>;
  /** The workload runs: metering starts its timeline here, before the lease is `running`. */
  onStarted: (leaseId: string, containerId: string) => void;
  /** The longest a stop may take beyond runtime.stopTimeoutSeconds before the lease is ended anyway. */
  stopGraceMs?: number;
}

/**
 * The effects that act on a lease's workload through the backend: pull, start, stop, and waiting
 * for it to end. Each runs in the background and reports back as an event.
 */
export class WorkloadExecutor {
  private readonly imageIds = new Map<string, string>();
  private readonly waiting = new Set<string>();

  constructor(private readonly deps: WorkloadDeps) {}

  /** Pull (with the network prepared meanwhile), then image-ready or pull-failed. */
  pull(leaseId: string): void {
    this.deps.tasks.run(leaseId, async () => {
      const { store, backend, log, tasks } = this.deps;
      const lease = store.leases.get(leaseId);
      if (!lease || lease.state !== 'pulling') return;
      const signal = tasks.leaseSignal(leaseId);
      const { quote, manifest } = this.manifestOf(lease);
      let lastProgress = 0;
      try {
        const prepared = await backend.prepare({
          runtimeId: lease.runtimeId,
          manifest,
          registryAuth: manifest.registryAuth,
          signal,
          onProgress: (p) => {
            const now = this.deps.clock.now();
            if (now - lastProgress < 2_000) return;
            lastProgress = now;
            log.info({ leaseId, image: p.image, layer: p.layer, status: p.status, current: p.current, total: p.total }, 'pulling image');
          },
        });
        checkQuotedImage(quote, prepared);
        this.imageIds.set(leaseId, prepared.imageId);
        store.leases.update(leaseId, { imageDigest: prepared.digest });
        await this.deps.dispatch(leaseId, { type: 'image-ready', digest: prepared.digest }, `image ${prepared.digest} ready`);
      } catch (err) {
        if (tasks.signal.aborted) return;
        let detail = describeError(err);
        if (quote.allocation.registryAuthGiven && !manifest.registryAuth) {
          detail += ' (the registry credentials given with the quote were held in memory only and were lost in a daemon restart)';
        }
        await this.deps.dispatch(leaseId, { type: 'pull-failed', detail }, `pull failed: ${detail}`);
      }
    });
  }

  /** Create and start the workload, then container-started or start-failed. */
  start(leaseId: string): void {
    this.deps.tasks.run(leaseId, async () => {
      const { store, backend, tasks } = this.deps;
      const lease = store.leases.get(leaseId);
      if (!lease || lease.state !== 'starting') return;
      const signal = tasks.leaseSignal(leaseId);
      const { quote, manifest } = this.manifestOf(lease);
      try {
        // After a restart the image id is gone from memory: prepare again (a no-op when it is there).
        let imageId = this.imageIds.get(leaseId);
        if (imageId === undefined) {
          const prepared = await backend.prepare({ runtimeId: lease.runtimeId, manifest, registryAuth: manifest.registryAuth, signal });
          checkQuotedImage(quote, prepared);
          imageId = prepared.imageId;
        }
        const started = await backend.start({
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
        this.imageIds.delete(leaseId);
        if (store.leases.get(leaseId)?.state !== 'starting') {
          // Ended while it was starting: it must not run on.
          await backend.stop(lease.runtimeId, 'requested', { signal: tasks.signal }).catch(() => undefined);
          return;
        }
        this.deps.onStarted(leaseId, started.handle);
        await this.deps.dispatch(leaseId, { type: 'container-started', containerId: started.handle }, `container ${started.handle.slice(0, 12)} running`);
      } catch (err) {
        if (tasks.signal.aborted) return;
        const detail = describeError(err);
        await this.deps.dispatch(leaseId, { type: 'start-failed', detail }, `start failed: ${detail}`);
      }
    });
  }

  /**
   * Stops the workload (the meter takes its last sample first, through `beforeStop`). When the
   * backend cannot stop it in time, the lease ends all the same, billed to its last sample: a
   * wedged engine must not keep a lease running on the tenant's money.
   */
  stop(leaseId: string, reason: EndReason, beforeStop: () => Promise<void>): void {
    this.deps.tasks.run(leaseId, async () => {
      const { store, backend, config, tasks, log } = this.deps;
      const lease = store.leases.get(leaseId);
      if (!lease) return;
      await beforeStop().catch((err: unknown) => log.warn({ leaseId, err: describeError(err) }, 'final sample before stop failed'));
      const limit = config.runtime.stopTimeoutSeconds * 1000 + (this.deps.stopGraceMs ?? 30_000);
      try {
        await backend.stop(lease.runtimeId, STOP_REASONS[reason], { signal: tasks.within(limit) });
      } catch (err) {
        if (tasks.signal.aborted) return;
        const detail = isProviderError(err, 'CONTAINER_NOT_FOUND') ? 'the container was gone when it was to be stopped' : `the backend could not stop it: ${describeError(err)}`;
        await this.deps.dispatch(leaseId, { type: 'container-vanished' }, detail);
        return;
      }
      await this.reportExit(leaseId);
    });
  }

  /** Waits for the workload to end, then container-exited (or container-vanished). */
  awaitExit(leaseId: string): void {
    if (this.waiting.has(leaseId)) return;
    this.waiting.add(leaseId);
    const lease = this.deps.store.leases.get(leaseId);
    if (!lease) return;
    const signal = this.deps.tasks.leaseSignal(leaseId);
    this.deps.tasks.run(leaseId, async () => {
      try {
        await this.deps.backend.wait(lease.runtimeId, { signal });
        await this.reportExit(leaseId);
      } catch (err) {
        if (signal.aborted) return;
        if (isProviderError(err, 'CONTAINER_NOT_FOUND')) await this.deps.dispatch(leaseId, { type: 'container-vanished' }, 'the container disappeared');
        else throw err;
      } finally {
        this.waiting.delete(leaseId);
      }
    });
  }

  private async reportExit(leaseId: string): Promise<void> {
    const lease = this.deps.store.leases.get(leaseId);
    if (!lease) return;
    try {
      const { exit } = await this.deps.backend.status(lease.runtimeId, { signal: this.deps.tasks.signal });
      if (!exit) return;
      await this.deps.dispatch(
        leaseId,
        { type: 'container-exited', exitCode: exit.exitCode, oomKilled: exit.oomKilled },
        `container exited with code ${exit.exitCode}${exit.oomKilled ? ' (out of memory)' : ''}`,
      );
    } catch (err) {
      if (isProviderError(err, 'CONTAINER_NOT_FOUND')) await this.deps.dispatch(leaseId, { type: 'container-vanished' }, 'the container is gone');
      else throw err;
    }
  }

  manifestOf(lease: StoredLease): { quote: StoredQuote; manifest: Manifest } {
    const quote = this.deps.store.quotes.get(lease.quoteNonce ?? '');
    if (!quote) throw new ProviderError('LEASE_NOT_FOUND', `lease ${lease.leaseId} has no quote of ours`, { input: lease.leaseId });
    const registryAuth = this.deps.admission.registryAuth(quote.nonce);
    // The image as resolved when the quote was signed: a tag moved since cannot change what runs.
    const image = quote.allocation.image?.pinned ?? quote.manifest.image;
    return { quote, manifest: parseManifest({ ...quote.manifest, image, ...(registryAuth ? { registryAuth } : {}) }) };
  }
}

/** Refuses an image other than the one the quote named (a local image rebuilt since, a registry that served another manifest). */
function checkQuotedImage(quote: StoredQuote, prepared: { imageId: string; digest: string }): void {
  const named = quote.allocation.image;
  if (!named) return;
  const got = named.source === 'local' ? prepared.imageId : prepared.digest;
  if (got !== named.digest) {
    throw new ProviderError('IMAGE_NOT_FOUND', `image ${named.pinned} is no longer the one quoted: quoted ${named.digest}, found ${got}`, { input: named.pinned });
  }
}
