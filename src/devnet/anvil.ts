import { spawn, type ChildProcess } from 'node:child_process';
import { childEnv } from '../util/exec';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import { sleep } from '../util/sleep';

export interface AnvilOptions {
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  chainId?: number;
  /** Seconds between blocks; 0 mines on every transaction. */
  blockTimeSeconds?: number;
  /** Load state from and dump it to this file, so the chain survives restarts. */
  statePath?: string;
  /** Also dump the state this often, so a kill -9 loses at most this much. */
  stateIntervalSeconds?: number;
  /** The anvil binary; default: the one @foundry-rs/anvil installed. */
  binary?: string;
  startTimeoutMs?: number;
  signal?: AbortSignal;
  log?: Logger;
}

export interface AnvilInstance {
  rpcUrl: string;
  wsUrl: string;
  host: string;
  port: number;
  chainId: number;
  pid: number;
  /** Stops anvil (SIGTERM, so it dumps its state; SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Kills anvil at once, as a crash would (no state dump). */
  kill(): Promise<void>;
}

/** The binary @foundry-rs/anvil ships for this platform. */
export function anvilBinary(): string {
  const platformPackage = `@foundry-rs/anvil-${process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  try {
    const pkg = require.resolve(`${platformPackage}/package.json`);
    const candidate = join(dirname(pkg), 'bin', 'anvil');
    if (existsSync(candidate)) return candidate;
  } catch {
    // fall through to PATH
  }
  return 'anvil';
}

/** A TCP port free on `host` right now (another process may still take it before we do). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Starts anvil as a child process and resolves once its JSON-RPC answers. */
export async function startAnvil(options: AnvilOptions = {}): Promise<AnvilInstance> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port && options.port > 0 ? options.port : await freePort(host);
  const chainId = options.chainId ?? 31337;
  const args = ['--host', host, '--port', String(port), '--chain-id', String(chainId), '--silent'];
  if (options.blockTimeSeconds && options.blockTimeSeconds > 0) args.push('--block-time', String(options.blockTimeSeconds));
  if (options.statePath) {
    args.push('--state', options.statePath);
    if (options.stateIntervalSeconds) args.push('--state-interval', String(options.stateIntervalSeconds));
  }
  const binary = options.binary ?? anvilBinary();
  // Its own process group: Ctrl-C at the terminal reaches only the daemon, which may still need
  // the chain to drain; the daemon stops anvil itself (and kills it on exit, below).
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv(process.env), detached: true });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // anvil must never outlive this process, whatever path it exits by.
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) =>
      reject(
        new ProviderError('DEVNET_START_FAILED', `could not start anvil (${binary}): ${err.message}`, {
          cause: err,
          fix: 'reinstall the package (npm ci) so @foundry-rs/anvil provides the anvil binary, or put anvil on PATH',
        }),
      ),
    ),
  );
  spawnError.catch(() => undefined);

  const rpcUrl = `http://${host}:${port}`;
  const stopWith = async (signal: NodeJS.Signals): Promise<void> => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };

  try {
    await Promise.race([
      waitForRpc(rpcUrl, options.startTimeoutMs ?? 20_000, options.signal, () =>
        child.exitCode !== null ? `anvil exited with code ${child.exitCode}: ${stderr.trim()}` : undefined,
      ),
      spawnError,
    ]);
  } catch (err) {
    await stopWith('SIGKILL');
    throw err;
  }
  options.log?.debug({ rpcUrl, pid: child.pid, statePath: options.statePath }, 'anvil is up');
  return {
    rpcUrl,
    wsUrl: `ws://${host}:${port}`,
    host,
    port,
    chainId,
    pid: child.pid ?? 0,
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
  };
}

async function waitForRpc(
  rpcUrl: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  dead: () => string | undefined,
): Promise<void> {
  const deadline = AbortSignal.timeout(timeoutMs);
  for (;;) {
    signal?.throwIfAborted();
    const why = dead();
    if (why) throw new ProviderError('DEVNET_START_FAILED', why, { fix: 'check that the port is free and the state file readable' });
    try {
      const res = await fetch(rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(1_000),
      });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (deadline.aborted) {
      throw new ProviderError('DEVNET_START_FAILED', `anvil did not answer on ${rpcUrl} within ${timeoutMs} ms`, {
        fix: 'check that the port is free (devnet.port) and that anvil runs on this machine',
      });
    }
    await sleep(50);
  }
}
