import type { Command } from 'commander';
import { leaseCounts, storedProvider } from '../daemon';
import { commandContext, type CliIo } from './context';
import { OperatorClient, fromDaemonOrStore, readDaemonStore } from './local-api';
import { formatStatus, type StatusReport } from './operator-format';

/** `provider status`: the running daemon's state; with the daemon down, what its store says (exit 0 either way; 1 when there is no store to read). */
export function registerStatusCommand(program: Command, io: CliIo): void {
  program
    .command('status')
    .description('the daemon\'s state (chain, Docker, leases by state); from its store when it is not running')
    .option('--json', 'one JSON object; "daemon" is "running" or "down"')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const client = OperatorClient.forConfig(config);
      const { value } = await fromDaemonOrStore<StatusReport>(
        async () => ({ daemon: 'running', apiUrl: client.baseUrl, ...(await client.status()) }),
        () =>
          readDaemonStore(config, ctx.log, (opened) => ({
            daemon: 'down',
            apiUrl: client.baseUrl,
            store: opened.path,
            chainId: opened.chainId,
            marketplace: opened.marketplace,
            provider: storedProvider(opened.store),
            leases: leaseCounts(opened.store),
          })),
      );
      if (options.json) ctx.print(JSON.stringify(value, null, 2));
      else io.stdout.write(formatStatus(value));
    });
}
