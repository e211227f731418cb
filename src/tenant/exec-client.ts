import type { Readable, Writable } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import { EXEC_STREAM } from '../api';
import { ProviderError } from '../errors';
import { ProviderRefusedError } from './errors';
import { openLeaseSocket, type LeaseEndpoint } from './lease-transport';

export interface ExecOptions {
  /** Default: the image's /bin/sh. */
  command?: string[];
  /** A terminal in the lease (stdout and stderr then arrive as one stream). */
  tty?: boolean;
  /** The terminal's size from the start. */
  size?: { cols: number; rows: number };
  /** Piped to the process; its end is the process's end-of-file. None: the process reads nothing. */
  stdin?: Readable;
  /** Where the process's output goes; by default it is dropped. */
  stdout?: Writable;
  stderr?: Writable;
  signal?: AbortSignal;
}

export interface ExecHandle {
  /** Resizes the lease's terminal (tty sessions). */
  resize(cols: number, rows: number): void;
  /** Sends bytes to the process's stdin (besides `stdin`). */
  write(data: Buffer | string): void;
  /** Ends the process's stdin. */
  endInput(): void;
  /** The process's exit code; rejects when the provider ends the session otherwise (its code), or the connection is lost. */
  exit: Promise<number>;
  /** Leaves the session: the lease's terminal is hung up. */
  close(): void;
}

/**
 * WS /v1/leases/:id/exec: a process in the lease's container, as its tenant. Resolves once the
 * session is open (a refusal rejects with the provider's code, e.g. AUTH_FORBIDDEN,
 * EXEC_SESSIONS_EXHAUSTED, RATE_LIMITED); `exit` then resolves with the process's exit code.
 */
export async function openExec(endpoint: LeaseEndpoint, leaseId: bigint | string, options: ExecOptions = {}): Promise<ExecHandle> {
  const search = new URLSearchParams();
  for (const arg of options.command ?? []) search.append('command', arg);
  if (options.tty) search.set('tty', '1');
  if (options.size) {
    search.set('cols', String(options.size.cols));
    search.set('rows', String(options.size.rows));
  }
  const query = search.toString();
  const ws = await openLeaseSocket(endpoint, `/v1/leases/${leaseId}/exec${query ? `?${query}` : ''}`, options.signal ? { signal: options.signal } : {});
  const exit = new Promise<number>((resolve, reject) => {
    let outcome: { code: number } | { error: ProviderError } | undefined;
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (isBinary) {
        const target = bytes[0] === EXEC_STREAM.stderr ? options.stderr : options.stdout;
        target?.write(bytes.subarray(1));
        return;
      }
      const message = parseMessage(bytes);
      if (message?.type === 'exit' && typeof message.code === 'number') outcome = { code: message.code };
      else if (message?.type === 'error') outcome = { error: new ProviderRefusedError(200, String(message.code), String(message.message ?? 'session failed')) };
    });
    ws.once('close', (code, reason) => {
      cleanup();
      if (outcome && 'code' in outcome) resolve(outcome.code);
      else if (outcome) reject(outcome.error);
      else reject(new ProviderError('PROVIDER_UNREACHABLE', `the session ended without an exit code (${code} ${reason.toString('utf8')})`, { fix: 'open a new session' }));
    });
    ws.on('error', () => undefined);
  });
  exit.catch(() => undefined);
  const send = (data: Buffer | string): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(typeof data === 'string' ? Buffer.from(data) : data, { binary: true });
  };
  const control = (message: object): void => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  };
  const onData = (chunk: Buffer | string): void => send(chunk);
  const onEnd = (): void => control({ type: 'eof' });
  options.stdin?.on('data', onData);
  options.stdin?.once('end', onEnd);
  const onAbort = (): void => ws.close(1000, 'aborted');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  function cleanup(): void {
    options.stdin?.off('data', onData);
    options.stdin?.off('end', onEnd);
    options.signal?.removeEventListener('abort', onAbort);
  }
  return {
    resize: (cols, rows) => control({ type: 'resize', cols, rows }),
    write: send,
    endInput: onEnd,
    exit,
    close: () => ws.close(1000, 'closed'),
  };
}

function parseMessage(bytes: Buffer): { type?: unknown; code?: unknown; message?: unknown } | undefined {
  try {
    return JSON.parse(bytes.toString('utf8')) as { type?: unknown };
  } catch {
    return undefined;
  }
}

/** A local terminal as `runShell` uses it: process.stdin/stdout in a CLI. */
export interface LocalTerminal {
  stdin: Readable & { isTTY?: boolean; setRawMode?(raw: boolean): unknown };
  stdout: Writable & { isTTY?: boolean; columns?: number; rows?: number; on(event: 'resize', listener: () => void): unknown; off(event: 'resize', listener: () => void): unknown };
  stderr: Writable;
}

/**
 * `provider tenant shell`: the local terminal joined to a shell in the lease (raw mode, the
 * lease's terminal resized with the local one), or plain pipes when stdin is not a terminal.
 * Resolves with the remote exit code.
 */
export async function runShell(endpoint: LeaseEndpoint, leaseId: bigint | string, local: LocalTerminal, options: { command?: string[]; signal?: AbortSignal } = {}): Promise<number> {
  const tty = local.stdin.isTTY === true && local.stdout.isTTY === true;
  const size = tty && local.stdout.columns && local.stdout.rows ? { cols: local.stdout.columns, rows: local.stdout.rows } : undefined;
  const session = await openExec(endpoint, leaseId, {
    ...(options.command ? { command: options.command } : {}),
    tty,
    ...(size ? { size } : {}),
    stdin: local.stdin,
    stdout: local.stdout,
    stderr: local.stderr,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const onResize = (): void => {
    if (local.stdout.columns && local.stdout.rows) session.resize(local.stdout.columns, local.stdout.rows);
  };
  if (tty) {
    local.stdin.setRawMode?.(true);
    local.stdout.on('resize', onResize);
  }
  local.stdin.resume();
  try {
    return await session.exit;
  } finally {
    if (tty) {
      local.stdout.off('resize', onResize);
      local.stdin.setRawMode?.(false);
    }
    local.stdin.pause();
  }
}
