import type { Command } from 'commander';
import { z } from 'zod';
import { wire } from '../api';
import { ProviderError, isProviderError } from '../errors';
import { CliExit, commandContext, type CliIo } from './context';
import { OperatorClient } from './local-api';
import { formatWithdraw } from './operator-format';

/** `provider withdraw`: the daemon sends the marketplace's withdraw() now and this waits for it. */
export function registerWithdrawCommand(program: Command, io: CliIo): void {
  program
    .command('withdraw')
    .description('withdraw the finalised earnings to the provider\'s wallet now (needs the running daemon)')
    .option('--wait <seconds>', 'how long to wait for the transaction', '60')
    .option('--json', 'JSON: {outcome, key, amount, txHash, error}; outcome nothing | confirmed | pending | reverted | failed')
    .action(async (options: { json?: boolean; wait: string }, command: Command) => {
      const ctx = commandContext(io, command);
      const wait = Number(options.wait);
      if (!/^\d{1,3}$/.test(options.wait) || wait > 300) {
        throw new ProviderError('USAGE', `--wait ${options.wait}: expected whole seconds from 0 to 300`, { fix: 'for example --wait 60' });
      }
      const client = OperatorClient.forConfig(ctx.loaded.config);
      let result;
      try {
        result = await client.withdraw(wait);
      } catch (err) {
        if (!isProviderError(err, 'DAEMON_NOT_RUNNING')) throw err;
        // The daemon holds the key and the transaction outbox: nothing to fall back on here.
        throw new ProviderError('DAEMON_NOT_RUNNING', `withdraw needs the running daemon (it holds the provider key and sends the transaction): ${err.message}`, {
          fix: 'start it with `provider start`, then run `provider withdraw` again',
        });
      }
      if (options.json) ctx.print(JSON.stringify(z.encode(wire.withdrawResultWire, result), null, 2));
      else {
        const earnings = result.outcome === 'nothing' ? undefined : await client.earnings().catch(() => undefined);
        io.stdout.write(formatWithdraw(result, { decimals: earnings?.token?.decimals ?? null, payout: earnings?.payout ?? null }));
      }
      // Still pending is not a failure: it was sent, and `provider earnings` shows how it ends.
      if (result.outcome === 'reverted' || result.outcome === 'failed') throw new CliExit(1);
    });
}
