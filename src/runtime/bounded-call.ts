import { ProviderError } from '../errors';
import { ProbeTimeoutError, withTimeout } from '../util/with-timeout';

export interface CallBounds {
  /** The caller's: shutdown, or a lease that ended. */
  signal?: AbortSignal | undefined;
  timeoutMs: number;
}

/**
 * One call to the container engine, bounded: it fails with BACKEND_TIMEOUT after `timeoutMs`, and
 * with OPERATION_ABORTED as soon as the caller's signal aborts (already aborted: before it is
 * made). A wedged engine thus fails the call instead of holding whoever waits on it (a lease's
 * metering lock) forever. `work` gets a signal to hand the engine request; it stays tied to the
 * caller's signal after the answer, so a stream the call returns ends with the caller.
 */
export async function boundedCall<T>(what: string, bounds: CallBounds, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const outer = bounds.signal;
  if (outer?.aborted) throw aborted(what, outer);
  try {
    return await withTimeout(what, bounds.timeoutMs, (timeout) => work(outer ? AbortSignal.any([outer, timeout]) : timeout), outer);
  } catch (err) {
    if (err instanceof ProbeTimeoutError) throw backendTimeout(what, bounds.timeoutMs, err);
    if (outer?.aborted) throw aborted(what, outer);
    throw err;
  }
}

export function backendTimeout(what: string, timeoutMs: number, cause?: unknown): ProviderError {
  return new ProviderError('BACKEND_TIMEOUT', `${what}: the container engine gave no answer within ${timeoutMs} ms`, {
    cause,
    fix: 'check that the container engine answers (`docker info`); an engine that stays wedged needs a restart (raise docker.requestTimeoutMs only for a slow but working one)',
  });
}

export function aborted(what: string, signal: AbortSignal): ProviderError {
  return new ProviderError('OPERATION_ABORTED', `${what} was aborted`, { cause: signal.reason });
}

/**
 * The bound of requests that walk files (a writable layer's size, a container's or an image's
 * removal, a whole log): slower on a busy disk than a plain request, and still not let hang.
 */
export function slowCallTimeout(requestTimeoutMs: number): number {
  return 6 * requestTimeoutMs;
}
