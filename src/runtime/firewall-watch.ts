import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { Firewall } from './firewall';

/**
 * Keeps the lease firewall in place: every `intervalMs` the rules of every lease are checked
 * (Firewall.verify) and what another tool took away is restored: `iptables -F FORWARD` (Docker's
 * hook to DOCKER-USER), a flushed or deleted lease chain, a jump deleted. Each restoration is a
 * warning in the log and a count for the metrics; a pass that fails (iptables busy) is retried at
 * the next one. Until the check comes round, a lease whose rules were flushed is unfiltered: the
 * interval is the exposure.
 */
export class FirewallWatch {
  constructor(
    private readonly deps: {
      firewall: Firewall;
      clock: Clock;
      log: Logger;
      intervalMs: number;
      /** How long dockerd is given to finish moving its FORWARD hook before a missing one counts (default 1 s). */
      settleMs?: number;
      /** Told how many things one pass restored (provider_firewall_restored_total). */
      onRestored?: (count: number) => void;
    },
  ) {}

  /** One check; what it restored (lease ids, `hook:v4`). */
  async check(): Promise<string[]> {
    const { clock, settleMs = 1_000 } = this.deps;
    const restored = await this.deps.firewall.verify(() => clock.sleep(settleMs));
    if (restored.length > 0) {
      this.deps.log.warn({ restored }, 'lease firewall rules were removed by something else (a firewall reload, iptables -F); restored them');
      this.deps.onRestored?.(restored.length);
    }
    return restored;
  }

  /** Checks until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, log, intervalMs } = this.deps;
    while (!signal.aborted) {
      await clock.sleep(intervalMs, signal).catch(() => undefined);
      if (signal.aborted) return;
      await this.check().catch((err: unknown) => log.warn({ err: describeError(err) }, 'checking the lease firewall rules failed; trying again at the next check'));
    }
  }
}
