import type { Command } from 'commander';
import { z } from 'zod';
import { wire } from '../api';
import { leaseDetail, leaseSummaries } from '../daemon';
import { commandContext, type CliIo } from './context';
import { OperatorClient, fromDaemonOrStore, readDaemonStore } from './local-api';
import { formatLeaseDetail, formatLeases } from './operator-format';

/** `provider leases [lease]`: every lease, or one with its transitions and checkpoints; from the store when the daemon is down. */
export function registerLeasesCommand(program: Command, io: CliIo): void {
  program
    .command('leases')
    .description('list leases (state, image, tenant, times, amount earned); with a lease id, its history and checkpoints')
    .argument('[lease]', 'a lease id: show that lease in detail')
    .option('--json', 'JSON: {source, leases} or {source, lease}; amounts are decimal strings of token base units')
    .action(async (leaseId: string | undefined, options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const client = OperatorClient.forConfig(config);
      if (leaseId !== undefined) {
        const { source, value } = await fromDaemonOrStore(
          () => client.lease(leaseId),
          () => readDaemonStore(config, ctx.log, (opened) => leaseDetail(opened.store, leaseId)),
        );
        if (options.json) ctx.print(JSON.stringify({ source, lease: z.encode(wire.operatorLeaseDetailWire, value) }, null, 2));
        else io.stdout.write(formatLeaseDetail(value, source));
        return;
      }
      const { source, value } = await fromDaemonOrStore(
        () => client.leases(),
        () => readDaemonStore(config, ctx.log, (opened) => leaseSummaries(opened.store)),
      );
      if (options.json) ctx.print(JSON.stringify({ source, ...z.encode(wire.operatorLeasesWire, { leases: value }) }, null, 2));
      else io.stdout.write(formatLeases(value, source));
    });
}
