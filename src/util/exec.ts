import { execFile } from 'node:child_process';

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Upper bound on captured stdout, so a runaway tool cannot exhaust memory. */
  maxBufferBytes?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a program without a shell. Injected wherever the daemon shells out (nvidia-smi, iptables),
 * so tests can substitute a fake program on PATH or a fake function.
 */
export type Exec = (file: string, args: readonly string[], options: ExecOptions) => Promise<ExecResult>;

export class ExecError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly reason: 'not-found' | 'timeout' | 'exit' | 'signal' | 'other',
    readonly exitCode: number | null,
    readonly stderr: string,
    /** Some tools (nvidia-smi among them) print their failure on stdout, not stderr. */
    readonly stdout: string = '',
  ) {
    super(message);
    this.name = 'ExecError';
  }
}

/** Names of variables a child program never needs and must not be able to read back. */
const SECRET_ENV = /PASSWORD|SECRET|PRIVATE_KEY|MNEMONIC|TOKEN/i;

/**
 * The environment a child (nvidia-smi, iptables) gets: ours without secrets, since any process
 * of the same user can read a child's /proc/<pid>/environ.
 */
export function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !SECRET_ENV.test(name)));
}

export const execFileAsync: Exec = (file, args, options) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      {
        timeout: options.timeoutMs,
        killSignal: 'SIGKILL',
        maxBuffer: options.maxBufferBytes ?? 32 * 1024 * 1024,
        signal: options.signal,
        env: childEnv(options.env ?? process.env),
        encoding: 'utf8',
        windowsHide: true,
      },
      (error, stdout, stderr) => {
        if (!error) {
          resolve({ stdout, stderr });
          return;
        }
        const err = error as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null; code?: unknown };
        if (err.code === 'ENOENT') {
          reject(new ExecError(`${file}: not found`, file, 'not-found', null, stderr));
        } else if (err.killed && err.signal === 'SIGKILL') {
          reject(new ExecError(`${file}: no answer within ${options.timeoutMs} ms`, file, 'timeout', null, stderr));
        } else if (typeof err.code === 'number') {
          reject(new ExecError(`${file}: exited with code ${err.code}`, file, 'exit', err.code, stderr, stdout));
        } else if (err.signal) {
          reject(new ExecError(`${file}: killed by ${err.signal}`, file, 'signal', null, stderr));
        } else {
          reject(new ExecError(`${file}: ${err.message}`, file, 'other', null, stderr));
        }
      },
    );
  });
