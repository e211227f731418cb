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
 * Waits for `work` at most `timeoutMs`. The work is told to stop through the signal; work that
 * cannot be stopped (systeminformation runs its own child processes) is left to finish unheard,
 * which is the price of a command that always answers.
 */
export async function withTimeout<T>(what: string, timeoutMs: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new ProbeTimeoutError(what, timeoutMs));
    }, timeoutMs);
    // A probe still running must not keep a finished CLI alive.
    timer.unref();
  });
  try {
    return await Promise.race([work(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}
