import pino, { type Logger } from 'pino';
import { LOG_LEVELS, REDACT_PATHS, type LogLevel } from './index';

/** Fields every line carries that a person at the terminal does not need. */
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'component', 'fix']);
const LABELS: Record<number, { text: string; colour: string }> = {
  10: { text: 'trace', colour: '2' },
  20: { text: 'debug', colour: '2' },
  30: { text: 'info', colour: '2' },
  40: { text: 'warning', colour: '33' },
  50: { text: 'ERROR', colour: '31;1' },
  60: { text: 'FATAL', colour: '31;1' },
};

/**
 * One log entry as a line for a person: the time, the level in a word, the component, the
 * sentence, then its fields as key=value; a `fix` goes on a line of its own under it.
 */
export function terminalLine(entry: Record<string, unknown>, colour: boolean): string {
  const label = LABELS[Number(entry.level)] ?? { text: String(entry.level), colour: '0' };
  const paint = (code: string, text: string): string => (colour ? `\u001b[${code}m${text}\u001b[0m` : text);
  const time = typeof entry.time === 'string' ? new Date(entry.time) : new Date(Number(entry.time ?? Date.now()));
  const clock = Number.isNaN(time.getTime()) ? '--:--:--' : time.toTimeString().slice(0, 8);
  const component = typeof entry.component === 'string' ? `${entry.component}: ` : '';
  const fields = Object.entries(entry)
    .filter(([key, value]) => !HIDDEN.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? (/\s/.test(value) ? JSON.stringify(value) : value) : JSON.stringify(value)}`);
  let line = `${clock}  ${paint(label.colour, label.text.padEnd(7))}  ${component}${String(entry.msg ?? '')}`;
  if (fields.length > 0) line += paint('2', `  ${fields.join(' ')}`);
  if (typeof entry.fix === 'string') line += `\n${' '.repeat(19)}fix: ${entry.fix}`;
  return `${line}\n`;
}

export interface TerminalLoggerOptions {
  level: LogLevel;
  destination: NodeJS.WritableStream;
  colour: boolean;
}

/**
 * The log of `provider start` in the foreground at a terminal: readable lines (terminalLine),
 * redacted like every other log. JSON logs (systemd, pipes, --log-format) are createLogger's.
 */
export function createTerminalLogger(options: TerminalLoggerOptions): Logger {
  const stream = {
    write(chunk: string): void {
      for (const text of chunk.split('\n')) {
        if (text.trim() === '') continue;
        try {
          options.destination.write(terminalLine(JSON.parse(text) as Record<string, unknown>, options.colour));
        } catch {
          options.destination.write(`${text}\n`);
        }
      }
    },
  };
  return pino({ level: options.level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}

/** The less talkative of two levels: `quieter('info', 'warn')` is warn, `quieter('error', 'warn')` error. */
export function quieter(a: LogLevel, b: LogLevel): LogLevel {
  if (a === 'silent' || b === 'silent') return 'silent';
  return LOG_LEVELS.indexOf(a) < LOG_LEVELS.indexOf(b) ? a : b;
}
