import type { Command } from 'commander';
import YAML from 'yaml';
import { configJsonSchema, redactConfig } from '../config';
import { commandContext, type CliIo } from './context';

export function registerConfigCommand(program: Command, io: CliIo): void {
  const config = program.command('config').description('inspect the configuration');

  config
    .command('print')
    .description('print the merged configuration (defaults, file, PROVIDER_* env, flags), secrets redacted')
    .option('--json', 'JSON instead of YAML')
    .action((options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const shown = redactConfig(ctx.loaded.config);
      if (options.json) ctx.print(JSON.stringify(shown, null, 2));
      else {
        ctx.print(`# merged from: defaults${ctx.loaded.file ? `, ${ctx.loaded.file}` : ''}, PROVIDER_* environment, flags`);
        io.stdout.write(YAML.stringify(shown));
      }
    });

  config
    .command('check')
    .description('validate the configuration and exit 0, or list every problem and exit 2')
    .action((_options: unknown, command: Command) => {
      const ctx = commandContext(io, command);
      ctx.print(`configuration is valid${ctx.loaded.file ? ` (${ctx.loaded.file})` : ' (defaults, no file)'}`);
    });

  config
    .command('schema')
    .description('print the JSON Schema of the config file, for editors')
    .action(() => {
      io.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    });
}
