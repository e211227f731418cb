import os from 'node:os';
import type { Command } from 'commander';
import { loadConfig, parseScalar, type FlagOverride, type LoadedConfig } from '../config';
import { createLogger, type LogFormat, type LogLevel, type Logger } from '../log';
import { ProviderError } from '../errors';
import { execFileAsync, type Exec } from '../util/exec';
import { systemClock, type Clock } from '../util/clock';
import type { Prompter } from './prompter';

/** What a command may touch of the outside world; tests pass their own. */
export interface CliIo {
  /** Where answers to questions come from; commands that ask need it to be a terminal. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  /** Tests answer questions through this instead of a terminal. */
  prompter?: () => Prompter;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  uid: number;
  home: string;
  exec: Exec;
  clock: Clock;
}

export function processIo(): CliIo {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    uid: typeof process.getuid === 'function' ? process.getuid() : 1000,
    home: os.homedir(),
    exec: execFileAsync,
    clock: systemClock,
  };
}

/** Thrown by a command that has already printed its result and must exit with a non-zero code. */
export class CliExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = 'CliExit';
  }
}

export interface GlobalOptions {
  config?: string;
  dataDir?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  devnet?: boolean;
  set?: string[];
}

export interface CommandContext {
  io: CliIo;
  loaded: LoadedConfig;
  log: Logger;
  print(line?: string): void;
  /** Reads the config again from the same file, environment and flags (SIGHUP); throws ConfigInvalidError. */
  reload(): LoadedConfig;
}

/** Loads config from the global flags of the program a command belongs to, and makes its logger. */
export function commandContext(io: CliIo, command: Command): CommandContext {
  const global = command.optsWithGlobals<GlobalOptions>();
  const flags: FlagOverride[] = [];
  if (global.dataDir !== undefined) flags.push({ path: 'dataDir', value: global.dataDir, flag: '--data-dir' });
  if (global.logLevel !== undefined) flags.push({ path: 'log.level', value: global.logLevel, flag: '--log-level' });
  if (global.logFormat !== undefined) flags.push({ path: 'log.format', value: global.logFormat, flag: '--log-format' });
  for (const assignment of global.set ?? []) {
    const eq = assignment.indexOf('=');
    if (eq <= 0) {
      throw new ProviderError('USAGE', `--set ${assignment}: expected key.path=value`, {
        input: assignment,
        fix: 'write it as --set api.port=9000',
      });
    }
    const path = assignment.slice(0, eq).trim();
    flags.push({ path, value: parseScalar(assignment.slice(eq + 1)), flag: `--set ${path}` });
  }
  const load = (): LoadedConfig =>
    loadConfig({
      file: global.config,
      env: io.env,
      flags,
      devnet: global.devnet === true,
      uid: io.uid,
      home: io.home,
      cwd: io.cwd,
    });
  const loaded = load();
  const log = createLogger({ level: loaded.config.log.level, format: loaded.config.log.format, destination: io.stderr });
  for (const warning of loaded.warnings) log.warn(warning);
  return { io, loaded, log, print: (line = '') => io.stdout.write(`${line}\n`), reload: load };
}
