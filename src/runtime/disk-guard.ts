import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { LeaseContainer } from './lease-containers';

export interface DiskGuardDeps {
  list(options: { size: true; signal: AbortSignal | undefined }): Promise<LeaseContainer[]>;
  /** Samples the lease's pids counters, so a fork bomb's refusals are known before it is gone. */
  sampleLimits(leaseId: string, options: { signal: AbortSignal | undefined }): Promise<unknown>;
  /** Stops the lease with reason `disk-quota`, whatever reason it had before. */
  stopOverQuota(leaseId: string, options: { signal: AbortSignal | undefined }): Promise<void>;
  clock: Clock;
  log: Logger;
  intervalMs: number;
}

/**
 * The disk quota of leases: overlay2 on ext4 cannot enforce a size, so a lease whose writable
 * layer (SizeRw) outgrows its diskBytes label is stopped instead.
 */
export class DiskGuard {
  constructor(private readonly deps: DiskGuardDeps) {}

  /** One pass: stops every running lease over its quota and samples the others' pids counters. Returns those stopped. */
  async enforce(signal?: AbortSignal): Promise<string[]> {
    const stopped: string[] = [];
    for (const c of await this.deps.list({ size: true, signal })) {
      if (signal?.aborted) break;
      if (!c.running) continue;
      await this.deps.sampleLimits(c.leaseId, { signal }).catch(() => undefined);
      if (c.diskBytes === undefined || c.sizeRwBytes === undefined || c.sizeRwBytes <= c.diskBytes) continue;
      this.deps.log.warn({ leaseId: c.leaseId, sizeRw: c.sizeRwBytes, diskBytes: c.diskBytes }, 'lease over its disk quota; stopping it');
      await this.deps.stopOverQuota(c.leaseId, { signal });
      stopped.push(c.leaseId);
    }
    return stopped;
  }

  /** Runs `enforce` every interval (on the clock) until the signal aborts. */
  async watch(options: { signal: AbortSignal; onStopped?: (leaseId: string) => void }): Promise<void> {
    while (!options.signal.aborted) {
      try {
        for (const leaseId of await this.enforce(options.signal)) options.onStopped?.(leaseId);
      } catch (err) {
        if (!options.signal.aborted) this.deps.log.warn({ err: describeError(err) }, 'disk quota check failed');
      }
      await this.deps.clock.sleep(this.deps.intervalMs, options.signal).catch(() => undefined);
    }
  }
}
