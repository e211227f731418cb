import pino, { type Logger, type LevelWithSilent } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger } from 'pino';
export { createTerminalLogger, terminalLine, quieter, type TerminalLoggerOptions } from './terminal';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'auto' | 'pretty' | 'json';

/** Keys whose values are secrets wherever they appear in a log object. */
const SECRET_KEYS = ['password', 'privateKey', 'mnemonic', 'registryAuth', 'auth', 'authorization', 'X-Registry-Auth', 'rpcUrl', 'wsUrl'];

/**
 * Paths pino blanks out. Secrets reach logs only by accident (an error carrying its request, a
 * manifest logged whole); this is the net under those accidents, four levels deep, because pino's
 * `*` matches exactly one level.
 */
export const REDACT_PATHS = SECRET_KEYS.flatMap((key) => {
  const leaf = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `["${key}"]`;
  return ['', '*.', '*.*.', '*.*.*.'].map((prefix) => (leaf.startsWith('[') ? `${prefix.replace(/\.$/, '')}${leaf}` : `${prefix}${leaf}`));
});

export interface LoggerOptions {
  level: LogLevel;
  /** auto: pretty on a terminal, JSON lines otherwise (journald, files, pipes). */
  format: LogFormat;
  /** Where lines go; defaults to stderr so stdout stays clean for command output (`--json`). */
  destination?: NodeJS.WritableStream & { isTTY?: boolean };
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stderr;
  const pretty = options.format === 'pretty' || (options.format === 'auto' && destination.isTTY === true);
  const base = {
    level: options.level as LevelWithSilent,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (pretty) {
    // pino-pretty as a stream, not a worker transport: a CLI that exits right after logging
    // would otherwise lose the last lines.
    return pino(
      base,
      pinoPretty({
        destination: destination as NodeJS.WritableStream,
        colorize: destination.isTTY === true,
        ignore: 'pid,hostname',
        translateTime: 'SYS:HH:MM:ss.l',
        // One line per event: a person reading a terminal scans messages, fields are detail.
        singleLine: true,
        sync: true,
      }),
    );
  }
  return pino(base, destination as NodeJS.WritableStream);
}

/** For tests and library use where nothing should be printed. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
