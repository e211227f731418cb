import type { DaemonStatus, Offer, ProviderService } from '../api';
import { describeError } from '../errors';
import { formatBytes } from '../util/bytes';
import type { Clock } from '../util/clock';

const HEARTBEAT_MS = 5 * 60_000;

/** The lease states worth a glance, in lifecycle order; the rest are history. */
const SHOWN_STATES = ['quoted', 'pulling', 'starting', 'running', 'stopping', 'finishing', 'settling', 'settled', 'failed'] as const;

/** One line saying what the daemon is doing: leases by state, what is free, the chain, drain. */
export function summaryLine(status: DaemonStatus, offer: Offer): string {
  const leases = SHOWN_STATES.filter((s) => status.leases[s] > 0).map((s) => `${status.leases[s]} ${s}`);
  const gpus = offer.free.gpus.reduce((n, g) => n + g.count, 0);
  const parts = [
    `leases: ${leases.length > 0 ? leases.join(', ') : 'none yet'}`,
    `free: ${offer.free.cpuMillis}m CPU, ${formatBytes(offer.free.memoryBytes)} memory, ${gpus} GPU${gpus === 1 ? '' : 's'}`,
    `block ${status.chain.headBlock ?? '?'}`,
  ];
  if (!status.docker.reachable) parts.push('DOCKER UNREACHABLE');
  if (!status.accepting) parts.push('not taking new leases');
  return parts.join(' · ');
}

/**
 * The terminal's live summary while `provider start` runs in the foreground: the summary line,
 * printed again when leases or free capacity change (and every few minutes as a heartbeat), so it
 * reads as a short history between the log lines instead of a counter that scrolls them away. Not
 * used under systemd (no TTY): logs say it all.
 */
export class LiveSummary {
  private timer: NodeJS.Timeout | undefined;
  private last = '';
  private lastPrintedAt = 0;
  private busy = false;

  constructor(
    private readonly service: Pick<ProviderService, 'status' | 'offer'>,
    private readonly print: (line: string) => void,
    private readonly clock: Clock,
  ) {}

  start(intervalMs = 5_000): void {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async refresh(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const line = summaryLine(await this.service.status(), await this.service.offer());
      // The block number moves every few seconds; it is shown, but it is not news.
      const news = line.replace(/ · block \S+/, '');
      const now = this.clock.now();
      if (news === this.last && now - this.lastPrintedAt < HEARTBEAT_MS) return;
      this.last = news;
      this.lastPrintedAt = now;
      this.print(`${clockTime(now)}  ${line}`);
    } catch (err) {
      const line = `summary unavailable: ${describeError(err)}`;
      if (line !== this.last) this.print(`${clockTime(this.clock.now())}  ${line}`);
      this.last = line;
    } finally {
      this.busy = false;
    }
  }
}

function clockTime(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}
