import type { Command } from 'commander';
import { z } from 'zod';
import { wire } from '../api';
import { storeEarnings } from '../daemon';
import { commandContext, type CliIo } from './context';
import { OperatorClient, fromDaemonOrStore, readDaemonStore } from './local-api';
import { formatEarnings } from './operator-format';

/** `provider earnings`: withdrawable, claimed, withdrawn, balance, and per lease earned and paid. */
export function registerEarningsCommand(program: Command, io: CliIo): void {
  program
    .command('earnings')
    .description('what the provider has earned: withdrawable on the marketplace, claims pending, withdrawn, and per lease')
    .option('--json', 'JSON; amounts are decimal strings of token base units; chain figures are null when the daemon is down')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const client = OperatorClient.forConfig(config);
      const { source, value } = await fromDaemonOrStore(
        () => client.earnings(),
        () => readDaemonStore(config, ctx.log, (opened) => storeEarnings(opened.store)),
      );
      if (options.json) ctx.print(JSON.stringify({ source, ...z.encode(wire.earningsWire, value) }, null, 2));
      else io.stdout.write(formatEarnings(value, source));
    });
}
