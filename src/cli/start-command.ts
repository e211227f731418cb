import { InvalidArgumentError, type Command } from 'commander';
import { ConfigInvalidError, describeChange, formatConfigProblems, type LoadedConfig } from '../config';
import { Daemon } from '../daemon';
import { describeError } from '../errors';
import { createTerminalLogger, quieter, type Logger } from '../log';
import { commandContext, type CliIo, type CommandContext, type GlobalOptions } from './context';
import { LiveSummary } from './start-summary';
import { formatPin } from '../tls';
import { reachabilityRows } from './operator-format';

interface StartOptions {
  json?: boolean;
  drainTimeout?: number;
  verbose?: boolean;
}

/**
 * `provider start`: the daemon in the foreground. On the embedded devnet when no `network` is
 * configured (or with --devnet).
 *
 * SIGTERM/SIGINT: no new quotes, then exit 0. Running leases keep running (the next start adopts
 * them), or with --drain-timeout they get that long to finish, are then ended and billed. A
 * second signal during a drain stops waiting; any further one is ignored, so systemd's stop
 * timeout decides. SIGHUP reloads pricing and admission policy from the config.
 */
export function registerStartCommand(program: Command, io: CliIo, version: string): void {
  program
    .command('start')
    .description('run the provider daemon: sell this machine\'s capacity, run leases, get paid')
    .option('--json', 'print the daemon\'s addresses as one JSON line once it is ready (for scripts)')
    .option('-v, --verbose', 'at a terminal, show INFO log lines too (by default it shows the steps, the summary, warnings and errors; logs to journald or a pipe are always whole)')
    .option(
      '--drain-timeout <seconds>',
      'on SIGTERM/SIGINT, give running leases this long to finish, then end and bill them before exiting (default: leave them running)',
      seconds,
    )
    .action(async (options: StartOptions, command: Command) => {
      const context = commandContext(io, command);
      const { config } = context.loaded;
      // Progress and the live summary are for a person at a terminal; systemd gets JSON logs only.
      const terminal = io.stdout.isTTY === true && !options.json;
      // An explicit --log-level says what the operator wants to see, as --verbose does.
      const asked = command.optsWithGlobals<GlobalOptions>().logLevel;
      const verbose = options.verbose === true || asked === 'info' || asked === 'debug' || asked === 'trace';
      const ctx: CommandContext = { ...context, log: terminalLog(context, terminal, verbose) };
      const startedAt = io.clock.now();
      const show = (line: string): void => {
        if (terminal) ctx.print(line);
      };

      const startup = new AbortController();
      const drainAbort = new AbortController();
      let signals = 0;
      let stopRequested: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => {
        stopRequested = resolve;
      });
      const onSignal = (signal: NodeJS.Signals): void => {
        signals += 1;
        if (signals === 1) {
          // Ctrl-C echoes ^C where the cursor is: the line starts below it.
          show(`${signal === 'SIGINT' ? '\n' : ''}stopping (${signal}): no new quotes${options.drainTimeout === undefined ? '; running leases keep running until the next start' : ''}`);
          ctx.log.info({ signal }, 'stop requested');
          startup.abort(new Error(`stopped by ${signal}`));
          stopRequested();
        } else if (signals === 2 && options.drainTimeout !== undefined) {
          ctx.log.warn({ signal }, 'second stop signal: not waiting for the drain any longer; leases not yet ended keep running');
          drainAbort.abort(new Error(`stopped by ${signal}`));
        }
      };
      let daemon: Daemon | undefined;
      const onHangup = (): void => {
        if (!daemon) {
          ctx.log.warn('SIGHUP while starting: ignored; send it again once the daemon is ready');
          return;
        }
        reload(ctx, daemon, show);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      process.on('SIGHUP', onHangup);
      let summary: LiveSummary | undefined;
      try {
        daemon = await Daemon.start({
          config,
          log: ctx.log,
          env: io.env,
          exec: io.exec,
          clock: io.clock,
          version,
          signal: startup.signal,
          onStep: (step) => show(`… ${step} (${elapsed(io.clock.now() - startedAt)})`),
        });
        const { info } = daemon;
        if (options.json) {
          ctx.print(JSON.stringify({ apiUrl: info.apiUrl, reachability: info.reachability, provider: info.provider, chainId: info.chainId, marketplace: info.marketplace, token: info.token, rpcUrl: info.rpcUrl, devnet: info.devnet, tlsSha256: info.tlsSha256 }));
        } else {
          ctx.print(`provider daemon running${info.devnet ? ' on the LOCAL DEVNET (not a real network; tokens are worthless)' : ''} (ready in ${elapsed(io.clock.now() - startedAt)})`);
          ctx.print(`  api          ${info.apiUrl}`);
          for (const [key = '', value = ''] of reachabilityRows(info.reachability)) ctx.print(`  ${key.padEnd(11)}  ${value}`);
          ctx.print(`  provider     ${info.provider}`);
          ctx.print(`  chain id     ${info.chainId}`);
          ctx.print(`  marketplace  ${info.marketplace}`);
          // What tenants pin (read from the chain): compare with `openssl x509 -fingerprint -sha256`.
          if (info.tlsSha256) ctx.print(`  tls sha256   ${formatPin(info.tlsSha256)}`);
          if (info.devnet) ctx.print(`  rpc          ${info.rpcUrl}`);
          ctx.print(
            options.drainTimeout === undefined
              ? 'press Ctrl-C to stop (running leases keep running until the next start)'
              : `press Ctrl-C to drain and stop (leases get ${options.drainTimeout} s to finish, then are ended and billed)`,
          );
        }
        if (terminal) {
          summary = new LiveSummary(daemon.service, show, io.clock);
          summary.start();
        }
        await stopped;
        summary?.stop();
        try {
          if (options.drainTimeout !== undefined) {
            show(`draining (up to ${options.drainTimeout} s for running leases, then ending and billing them; Ctrl-C again to stop waiting)`);
            const result = await daemon.drain({ timeoutSeconds: options.drainTimeout, signal: drainAbort.signal, onProgress: (message) => show(`… ${message}`) });
            show(`drained: ${result.finished.length} finished, ${result.ended.length} ended, ${result.billed.length} billed${result.left.length > 0 ? `, ${result.left.length} left for the next start` : ''}`);
          }
        } catch (err) {
          // Whatever went wrong, the daemon still stops: what the drain did not finish, the next start does.
          ctx.log.error({ err: describeError(err) }, 'drain failed; stopping anyway');
        } finally {
          await daemon.stop();
          show('stopped');
        }
      } finally {
        summary?.stop();
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        process.removeListener('SIGHUP', onHangup);
      }
    });
}

/**
 * At a terminal with log.format auto, the log in readable lines and, unless --verbose, warnings
 * and errors only: the steps and the summary say what INFO lines would. Otherwise (journald, a
 * pipe, a format asked for) the log as configured, unchanged.
 */
function terminalLog(ctx: CommandContext, terminal: boolean, verbose: boolean): Logger {
  const { log: settings } = ctx.loaded.config;
  if (!terminal || settings.format !== 'auto' || ctx.io.stderr.isTTY !== true) return ctx.log;
  return createTerminalLogger({
    level: verbose ? settings.level : quieter(settings.level, 'warn'),
    destination: ctx.io.stderr,
    colour: ctx.io.env.NO_COLOR === undefined,
  });
}

/** SIGHUP: read the config again; a broken one changes nothing and says why. */
function reload(ctx: CommandContext, daemon: Daemon, show: (line: string) => void): void {
  let next: LoadedConfig;
  try {
    next = ctx.reload();
  } catch (err) {
    const problems = err instanceof ConfigInvalidError ? formatConfigProblems(err) : [describeError(err)];
    ctx.log.error({ problems }, `config reload failed; keeping the running config: ${problems.join('; ')}`);
    show(`config reload failed; keeping the running config:\n  ${problems.join('\n  ')}`);
    return;
  }
  for (const warning of next.warnings) ctx.log.warn(warning);
  const outcome = daemon.reload(next.config);
  if (outcome.applied.length > 0) show(`config reloaded:\n  ${outcome.applied.map(describeChange).join('\n  ')}`);
  if (outcome.needRestart.length > 0) show(`not applied until the next start:\n  ${outcome.needRestart.map(describeChange).join('\n  ')}`);
  if (outcome.applied.length + outcome.needRestart.length === 0) show('config reloaded: nothing changed');
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('expected a whole number of seconds (0 or more)');
  return n;
}

function elapsed(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}
