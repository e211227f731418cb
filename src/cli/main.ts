import { Command, CommanderError, Option } from 'commander';
import { ConfigInvalidError, formatConfigProblems } from '../config';
import { isProviderError } from '../errors';
import { LOG_LEVELS } from '../log';
import { CliExit, processIo, type CliIo } from './context';
import { registerConfigCommand } from './config-command';
import { registerCapacityCommand } from './capacity-command';
import { registerDevnetCommand } from './devnet-command';
import { registerStartCommand } from './start-command';
import { registerInitCommand } from './init-command';
import { registerDoctorCommand } from './doctor-command';
import { registerStatusCommand } from './status-command';
import { registerLeasesCommand } from './leases-command';
import { registerLogsCommand } from './logs-command';
import { registerEarningsCommand } from './earnings-command';
import { registerWithdrawCommand } from './withdraw-command';
import { registerSelftestCommand } from './selftest-command';
import { registerDisputeCommand } from './dispute-command';
import { registerTenantCommand } from './tenant';
import { registerGpuBenchCommand } from './gpu-bench-command';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
/** Bad usage or bad configuration: fix the input, retrying will not help. */
export const EXIT_USAGE = 2;

export function buildProgram(io: CliIo): Command {
  const program = new Command('provider')
    .description('Sell this machine\'s CPU and GPU capacity on the compute marketplace')
    .version(version(), '-V, --version')
    .option('-c, --config <file>', 'config file (default: /etc/provider/provider.yaml as root, else ~/.config/provider/provider.yaml; env PROVIDER_CONFIG)')
    .option('--data-dir <dir>', 'data directory (overrides dataDir)')
    .addOption(new Option('--log-level <level>', 'log level (overrides log.level)').choices(LOG_LEVELS))
    .addOption(new Option('--log-format <format>', 'log format (overrides log.format)').choices(['auto', 'pretty', 'json']))
    .option('--devnet', 'ignore any configured network and use the embedded local devnet')
    .option('--set <key=value>', 'override any config key, e.g. --set api.port=9000 (repeatable)', collect, [])
    .showHelpAfterError()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .exitOverride();

  registerInitCommand(program, io);
  registerConfigCommand(program, io);
  registerCapacityCommand(program, io);
  registerDoctorCommand(program, io);
  registerDevnetCommand(program, io);
  registerStartCommand(program, io, version());
  registerStatusCommand(program, io);
  registerLeasesCommand(program, io);
  registerLogsCommand(program, io);
  registerEarningsCommand(program, io);
  registerWithdrawCommand(program, io);
  registerSelftestCommand(program, io);
  registerDisputeCommand(program, io);
  registerTenantCommand(program, io);
  registerGpuBenchCommand(program, io);
  for (const command of program.commands) command.exitOverride().configureOutput(program.configureOutput());
  return program;
}

/** Runs the CLI and returns the exit code; never calls process.exit, so tests can drive it. */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...argv]);
    return EXIT_OK;
  } catch (err) {
    return reportError(err, io);
  }
}

function reportError(err: unknown, io: CliIo): number {
  if (err instanceof CliExit) return err.exitCode;
  if (err instanceof CommanderError) {
    // Help and version are "errors" to commander; they already printed what they had to.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK;
    return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  }
  if (err instanceof ConfigInvalidError) {
    io.stderr.write(`provider: invalid configuration${err.file ? ` in ${err.file}` : ''}:\n`);
    for (const line of formatConfigProblems(err)) io.stderr.write(`  ${line}\n`);
    return EXIT_USAGE;
  }
  if (isProviderError(err)) {
    io.stderr.write(`provider: ${err.message}\n`);
    if (err.fix) io.stderr.write(`  fix: ${err.fix}\n`);
    return err.code === 'USAGE' || err.code === 'INIT_WOULD_OVERWRITE' || err.code.startsWith('CONFIG_') ? EXIT_USAGE : EXIT_FAILURE;
  }
  io.stderr.write(`provider: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT_FAILURE;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function version(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('../../package.json') as { version: string }).version;
}
