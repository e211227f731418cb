/** Raised by withTimeout; probes turn it into their own *_TIMEOUT failure. */
export class ProbeTimeoutError extends Error {
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`${what}: no answer within ${timeoutMs} ms`);
    this.name = 'ProbeTimeoutError';
  }
}

/**
 * Waits for `work` at most `timeoutMs`, or until `outer` aborts (daemon shutdown), whichever is
 * first. The work is told to stop through the signal it is given; work that cannot be stopped
 * (systeminformation runs its own child processes) is left to finish unheard, which is the price
 * of a command that always answers. An outer abort rejects with the signal's reason.
 */
export async function withTimeout<T>(
  what: string,
  timeoutMs: number,
  work: (signal: AbortSignal) => Promise<T>,
  outer?: AbortSignal,
): Promise<T> {
  outer?.throwIfAborted();
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let onOuterAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new ProbeTimeoutError(what, timeoutMs));
    }, timeoutMs);
    // A probe still running must not keep a finished CLI alive.
    timer.unref();
    onOuterAbort = () => {
      controller.abort(outer?.reason);
      reject(outer?.reason);
    };
    outer?.addEventListener('abort', onOuterAbort, { once: true });
  });
  try {
    return await Promise.race([work(controller.signal), stopped]);
  } finally {
    clearTimeout(timer);
    if (onOuterAbort) outer?.removeEventListener('abort', onOuterAbort);
  }
}
