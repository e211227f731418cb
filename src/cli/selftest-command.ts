import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import { z } from 'zod';
import { formatDoctorText } from '../doctor';
import { manifestSchema } from '../runtime';
import { Selftest, type SelftestReport } from '../selftest';
import { CliExit, commandContext, type CliIo } from './context';
import { publicApiUrl } from '../api';
import { parseFlags } from './flags';
import { OperatorClient } from './local-api';
import { openTenantSession } from './tenant-session';

const DEFAULT_IMAGE = 'busybox:1.36';
// The NVIDIA hook puts nvidia-smi into the container; the image only needs a shell and glibc.
const DEFAULT_GPU_IMAGE = 'nvidia/cuda:12.4.1-base-ubuntu22.04';
const DEFAULT_TIMEOUT_SECONDS = 180;

const optionsSchema = z.object({
  json: z.boolean().optional(),
  image: manifestSchema.shape.image,
  gpuImage: manifestSchema.shape.image,
  gpu: z.boolean(),
  tenantKeyFile: z.string().min(1).optional(),
  rpcUrl: z.url().optional(),
  timeout: z.coerce.number().int('expected whole seconds').min(10).max(3600),
});
type SelftestOptions = z.infer<typeof optionsSchema>;

/**
 * `provider selftest`: a real lease against the daemon running on this machine, from a test
 * tenant (on the devnet the dev tenant; elsewhere a funded key the operator names), with a
 * pass/fail line per step. Exit 0 when every step that ran passed, 1 otherwise.
 */
export function registerSelftestCommand(program: Command, io: CliIo): void {
  program
    .command('selftest')
    .description('run a real lease (CPU, then GPU when offered) against the running daemon as a tenant; pass/fail per step; exit 1 on any failure')
    .option('--json', 'machine-readable report')
    .option('--image <ref>', 'image of the CPU lease; needs sh, date and sleep', DEFAULT_IMAGE)
    .option('--gpu-image <ref>', 'image of the GPU lease; runs nvidia-smi -L (needs a shell and glibc)', DEFAULT_GPU_IMAGE)
    .option('--no-gpu', 'skip the GPU lease even when GPUs are offered')
    .option('--tenant-key-file <file>', 'file holding the private key of a funded tenant account (required off the devnet; never the provider\'s key)')
    .option('--rpc-url <url>', 'JSON-RPC endpoint the tenant uses (default: network.rpcUrl)')
    .addOption(new Option('--timeout <seconds>', 'bound on the whole selftest (closing a lease left open comes on top)').default(DEFAULT_TIMEOUT_SECONDS))
    .action(async (raw: Record<string, unknown>, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const options: SelftestOptions = parseFlags(optionsSchema, raw, 'selftest');
      const apiUrl = publicApiUrl(config);
      // Tested as a tenant sees it: the certificate pinned is the one registered on-chain for the
      // provider the daemon runs as (asked over the operator listener).
      const provider = async (): Promise<string> => (await OperatorClient.forConfig(config).status()).provider;
      const { tenant, rpc } = await openTenantSession(config, options, {
        apiUrl,
        clock: io.clock,
        keyNeeded: 'selftest pays for its leases from a tenant account you fund',
        provider,
        log: ctx.log,
      });
      const controller = new AbortController();
      const onSignal = (signal: NodeJS.Signals): void => controller.abort(new Error(`stopped by ${signal}`));
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const report = await new Selftest({
          tenant,
          clock: io.clock,
          log: ctx.log,
          nonce: () => randomBytes(6).toString('hex'),
          apiUrl,
          image: options.image,
          gpuImage: options.gpuImage,
          gpu: options.gpu,
          sampleIntervalSeconds: config.metering.sampleIntervalSeconds,
          timeoutMs: options.timeout * 1000,
          signal: controller.signal,
        }).run();
        if (options.json) ctx.print(JSON.stringify(report, null, 2));
        else io.stdout.write(formatSelftestText(report));
        if (!report.passed) throw new CliExit(1);
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
        rpc.destroy();
      }
    });
}

/** The doctor's table with each step's time in front of its detail, and the verdict. */
export function formatSelftestText(report: SelftestReport): string {
  const table = formatDoctorText(
    report.steps.map((s) => ({
      id: s.name,
      status: s.status,
      detail: `${(s.status === 'skip' ? '' : `${s.ms} ms`).padStart(9)}  ${s.detail}`,
      fix: s.fix ?? null,
    })),
  );
  return `${table}selftest ${report.passed ? 'PASSED' : 'FAILED'} in ${(report.ms / 1000).toFixed(1)} s\n`;
}

