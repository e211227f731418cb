import type { Command } from 'commander';
import { Daemon } from '../daemon';
import { commandContext, type CliIo } from './context';

/**
 * `provider start`: the daemon in the foreground. On the embedded devnet when no `network` is
 * configured (or with --devnet). SIGTERM/SIGINT shut it down gracefully (exit 0); a second signal
 * while shutting down is ignored, so systemd's stop timeout decides.
 */
export function registerStartCommand(program: Command, io: CliIo, version: string): void {
  program
    .command('start')
    .description('run the provider daemon: sell this machine\'s capacity, run leases, get paid')
    .option('--json', 'print the daemon\'s addresses as one JSON line once it is ready (for scripts)')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const controller = new AbortController();
      let stopRequested: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => {
        stopRequested = resolve;
      });
      const onSignal = (signal: NodeJS.Signals): void => {
        ctx.log.info({ signal }, 'stop requested');
        controller.abort(new Error(`stopped by ${signal}`));
        stopRequested();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const daemon = await Daemon.start({ config, log: ctx.log, env: io.env, exec: io.exec, clock: io.clock, version, signal: controller.signal });
        const { info } = daemon;
        if (options.json) {
          ctx.print(JSON.stringify({ apiUrl: info.apiUrl, provider: info.provider, chainId: info.chainId, marketplace: info.marketplace, token: info.token, rpcUrl: info.rpcUrl, devnet: info.devnet }));
        } else {
          ctx.print(`provider daemon running${info.devnet ? ' on the LOCAL DEVNET (not a real network; tokens are worthless)' : ''}`);
          ctx.print(`  api          ${info.apiUrl}`);
          ctx.print(`  provider     ${info.provider}`);
          ctx.print(`  chain id     ${info.chainId}`);
          ctx.print(`  marketplace  ${info.marketplace}`);
          if (info.devnet) ctx.print(`  rpc          ${info.rpcUrl}`);
          ctx.print('press Ctrl-C to stop');
        }
        await stopped;
        await daemon.stop();
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }
    });
}
