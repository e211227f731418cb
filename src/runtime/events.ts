import type Docker from 'dockerode';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { boundedCall } from './bounded-call';
import { engineSince } from './engine-since';
import { LABELS } from './names';

export type RuntimeEvent =
  | {
      kind: 'container';
      /** Engine action: create, start, die, oom, kill, stop, destroy, health_status... */
      action: string;
      leaseId: string;
      containerId: string;
      /** Exit code on `die`. */
      exitCode: number | undefined;
      /** Engine time in nanoseconds since the epoch. */
      timeNano: bigint;
    }
  /** The engine stopped answering (the event stream closed). */
  | { kind: 'engine-lost' }
  /** The engine answers again and events flow; replayed from where they stopped. Reconcile now. */
  | { kind: 'engine-back' };

interface EngineEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  timeNano?: number;
  time?: number;
}

/**
 * Follows the engine's events for our containers until `signal` aborts. When the stream closes
 * (engine restart, socket gone) it reports `engine-lost`, polls until the engine answers, then
 * re-subscribes with `since` at the last event it saw (the engine replays what it buffered) and
 * reports `engine-back`, the lease engine's cue to reconcile against `list()`.
 */
export async function followEvents(
  docker: Docker,
  onEvent: (event: RuntimeEvent) => void,
  options: { signal: AbortSignal; log: Logger; clock: Clock; requestTimeoutMs: number; retryMs?: number; onSubscribed?: () => void; instanceId?: string },
): Promise<void> {
  const { signal, log, clock } = options;
  let since: string | undefined;
  let lost = false;
  let backoff = options.retryMs ?? 250;
  while (!signal.aborted) {
    try {
      const filters = JSON.stringify({ type: ['container'], label: [`${LABELS.managed}=true`] });
      // Bounded until the engine answers; the stream itself lasts until the signal aborts.
      const query = { filters, ...(since ? { since } : {}) };
      const stream = (await boundedCall('subscribing to engine events', { signal, timeoutMs: options.requestTimeoutMs }, (abortSignal) =>
        docker.getEvents({ ...query, abortSignal } as object),
      )) as NodeJS.ReadableStream;
      if (lost) {
        lost = false;
        log.info('docker engine is back; following its events again');
        onEvent({ kind: 'engine-back' });
      }
      // Until an event arrives, a re-subscription replays from when this one began.
      if (since === undefined) since = String(Math.floor(clock.now() / 1000));
      options.onSubscribed?.();
      backoff = options.retryMs ?? 250;
      let buffer = '';
      for await (const chunk of stream as AsyncIterable<Buffer | string>) {
        buffer += chunk.toString();
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (!line) continue;
          let raw: EngineEvent;
          try {
            raw = JSON.parse(line) as EngineEvent;
          } catch {
            continue;
          }
          const timeNano = BigInt(raw.timeNano ?? (raw.time ?? 0) * 1e9);
          // `since` is inclusive at second granularity plus nanos; one past the last event seen.
          since = engineSince(timeNano + 1n);
          const attributes = raw.Actor?.Attributes ?? {};
          const leaseId = attributes[LABELS.leaseId];
          if (raw.Type !== 'container' || leaseId === undefined || raw.Actor?.ID === undefined) continue;
          // Another daemon instance's container on the same engine: its events are its own.
          const owner = attributes[LABELS.instance];
          if (options.instanceId !== undefined && owner !== undefined && owner !== options.instanceId) continue;
          const exit = attributes.exitCode;
          onEvent({
            kind: 'container',
            action: (raw.Action ?? '').split(':')[0] ?? '',
            leaseId,
            containerId: raw.Actor.ID,
            exitCode: exit === undefined ? undefined : Number(exit),
            timeNano,
          });
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      log.debug({ err: (err as Error).message }, 'docker event stream failed');
    }
    if (signal.aborted) return;
    if (!lost) {
      lost = true;
      log.warn('docker event stream closed; waiting for the engine');
      onEvent({ kind: 'engine-lost' });
    }
    await clock.sleep(backoff, signal).catch(() => undefined);
    backoff = Math.min(backoff * 2, 5_000);
  }
}
