import type { Command } from 'commander';
import { Wallet } from 'ethers';
import { createCapacityDetector } from '../capacity';
import { keystoreSettings, loadKeystore } from '../chain';
import { runGpuBench } from '../daemon/gpu-bench';
import { DEV_ACCOUNT, devPrivateKey } from '../devnet';
import { isProviderError } from '../errors';
import { createDockerClient } from '../runtime';
import { HOLDING_STATES } from '../vocabulary';
import { table } from '../util/text-table';
import { CliExit, commandContext, type CliIo } from './context';
import { openDaemonStore } from './local-api';

export function registerGpuBenchCommand(program: Command, io: CliIo): void {
  program
    .command('gpu-bench')
    .description('measure each offered GPU no lease holds (memory bandwidth, matrix-multiply rate) in a short container, sign the figures with the provider key and publish them with the offer')
    .option('--json', 'print the outcome as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const report = await createCapacityDetector(config, { exec: io.exec, env: io.env, clock: io.clock }).detect();
      if (report.allocatable.gpus.length === 0) {
        const why = report.gpus.ok ? report.allocatable.gpusNotOffered[0]?.detail : report.gpus.reason;
        io.stderr.write(`no GPU is offered on this machine, so none is benchmarked${why ? `: ${why}` : ''} (provider capacity shows why)\n`);
        throw new CliExit(1);
      }
      const signer = config.network ? await loadKeystore(keystoreSettings(config.keystore, config.dataDir), io.env) : new Wallet(devPrivateKey(DEV_ACCOUNT.provider));
      const outcome = await runGpuBench({ config, report, signer, held: heldGpus(ctx), docker: createDockerClient(config), clock: io.clock, log: ctx.log });
      if (options.json) {
        io.stdout.write(`${JSON.stringify(outcome, null, 2)}\n`);
      } else {
        const rows = [['GPU', 'MODEL', 'MEMORY GB/s', 'FP32 TFLOPS', 'FP16 TFLOPS', 'RESULT']];
        for (const r of outcome.measured) rows.push([r.uuid, r.model, r.memoryBandwidthGBps.toFixed(0), r.matmulFp32Tflops.toFixed(1), r.matmulFp16Tflops.toFixed(1), `measured in ${(r.durationMs / 1000).toFixed(1)} s`]);
        for (const s of outcome.skipped) rows.push([s.uuid, '-', '-', '-', '-', `skipped: ${s.reason}`]);
        for (const f of outcome.failed) rows.push([f.uuid, '-', '-', '-', '-', `failed (${f.code}): ${f.message}${f.fix ? `; fix: ${f.fix}` : ''}`]);
        io.stdout.write(`${table(rows).join('\n')}\n`);
        io.stdout.write(outcome.path ? `signed by ${await signer.getAddress()}, written to ${outcome.path}: the offer publishes it now, the on-chain metadata at the next start\n` : 'nothing new measured: the published benchmark is unchanged\n');
      }
      if (outcome.failed.length > 0) throw new CliExit(1);
    });
}

/**
 * GPUs that leases and open quotes hold, from the daemon's store. A daemon that never ran holds
 * none. Read once: a quote the running daemon grants meanwhile is not seen (the start-up run has
 * no such gap: it runs before the API serves quotes).
 */
function heldGpus(ctx: ReturnType<typeof commandContext>): string[] {
  let opened: ReturnType<typeof openDaemonStore>;
  try {
    opened = openDaemonStore(ctx.loaded.config, ctx.log);
  } catch (err) {
    if (isProviderError(err) && err.code === 'STORE_NOT_FOUND') return [];
    throw err;
  }
  try {
    const { store } = opened;
    const fromLeases = store.leases
      .list({ states: [...HOLDING_STATES, 'quoted'] })
      .flatMap((lease) => (lease.quoteNonce ? store.quotes.get(lease.quoteNonce)?.allocation.gpuUuids ?? [] : []));
    const fromQuotes = store.quotes.open().flatMap((quote) => quote.allocation.gpuUuids);
    return [...fromLeases, ...fromQuotes];
  } finally {
    opened.close();
  }
}
