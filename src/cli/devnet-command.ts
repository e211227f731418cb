import type { Command } from 'commander';
import { Devnet } from '../devnet';
import { commandContext, type CliIo } from './context';

/** `provider devnet`: runs the embedded local chain in the foreground until SIGINT/SIGTERM. */
export function registerDevnetCommand(program: Command, io: CliIo): void {
  program
    .command('devnet')
    .description('run the embedded local devnet (anvil + marketplace) in the foreground and print its addresses')
    .option('--json', 'print the addresses (and the public dev keys) as one JSON line')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const devnet = new Devnet({ dataDir: config.dataDir, ...config.devnet, log: ctx.log });
      const info = await devnet.start();
      try {
        if (options.json) {
          ctx.print(JSON.stringify(info));
        } else {
          ctx.print('local devnet is running: NOT a real network, tokens are worthless');
          ctx.print(`  rpc          ${info.rpcUrl}`);
          ctx.print(`  websocket    ${info.wsUrl}`);
          ctx.print(`  chain id     ${info.chainId}`);
          ctx.print(`  marketplace  ${info.marketplaceAddress}`);
          ctx.print(`  token        ${info.tokenAddress}`);
          ctx.print(`  provider     ${info.providerAddress}  (anvil dev account #1; its key is public)`);
          ctx.print(`  tenant       ${info.tenantAddress}  (anvil dev account #2; its key is public)`);
          ctx.print(`  state        ${devnet.statePath}`);
          ctx.print('press Ctrl-C to stop');
        }
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            process.removeListener('SIGINT', stop);
            process.removeListener('SIGTERM', stop);
            resolve();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      } finally {
        ctx.log.info('stopping the devnet');
        await devnet.stop();
      }
    });
}
