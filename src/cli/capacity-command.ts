import type { Command } from 'commander';
import { createCapacityDetector, formatCapacityText, nothingDetected } from '../capacity';
import { CliExit, commandContext, type CliIo } from './context';

export function registerCapacityCommand(program: Command, io: CliIo): void {
  program
    .command('capacity')
    .description('detect CPU, memory, disk, NVIDIA GPUs and Docker, and show what can be offered')
    .option('--json', 'print the report as JSON (schemaVersion 1), for scripts')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const detector = createCapacityDetector(ctx.loaded.config, { exec: io.exec, env: io.env, clock: io.clock });
      const report = await detector.detect();
      for (const missing of report.notDetected) ctx.log.debug({ part: missing.part, code: missing.code }, missing.reason);
      if (options.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else io.stdout.write(formatCapacityText(report));
      // Partial answers are normal (a CPU-only host has no nvidia-smi): only total blindness fails.
      if (nothingDetected(report)) throw new CliExit(1);
    });
}
