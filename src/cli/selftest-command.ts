import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { Wallet } from 'ethers';
import { z } from 'zod';
import { createRpcProvider } from '../chain';
import type { ProviderConfig } from '../config';
import { DEV_ACCOUNT, devPrivateKey } from '../devnet';
import { formatDoctorText } from '../doctor';
import { ProviderError, describeError } from '../errors';
import { manifestSchema } from '../runtime';
import { Selftest, type SelftestReport } from '../selftest';
import { TenantClient } from '../tenant';
import { CliExit, commandContext, type CliIo } from './context';
import { localApiUrl } from '../api';

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

const privateKeySchema = z
  .string()
  .trim()
  .regex(/^(0x)?[0-9a-fA-F]{64}$/, 'expected a private key: 64 hex digits, with or without 0x')
  .transform((key) => (key.startsWith('0x') ? key : `0x${key}`));

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
      const options = parseOptions(raw);
      const chain = await tenantChain(config, options);
      const rpc = createRpcProvider(chain.rpcUrl, { chainId: chain.chainId, pollingIntervalMs: chain.devnet ? 250 : 1_000 });
      const apiUrl = localApiUrl(config);
      const controller = new AbortController();
      const onSignal = (signal: NodeJS.Signals): void => controller.abort(new Error(`stopped by ${signal}`));
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const tenant = new TenantClient({
          signer: new Wallet(chain.tenantKey, rpc),
          apiUrl,
          chainId: chain.chainId,
          chain: rpc,
          ...(chain.marketplace ? { marketplace: chain.marketplace } : {}),
          ...(chain.token ? { token: chain.token } : {}),
          clock: io.clock,
        });
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

function parseOptions(raw: Record<string, unknown>): SelftestOptions {
  const parsed = optionsSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const flag = `--${String(issue?.path[0] ?? '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  throw new ProviderError('USAGE', `${flag}: ${issue?.message ?? 'invalid'}`, { input: flag, fix: 'see provider selftest --help' });
}

interface TenantChain {
  devnet: boolean;
  rpcUrl: string;
  chainId: number;
  tenantKey: string;
  /** Off the devnet, the configured contracts: the offer is not trusted to name them. */
  marketplace?: string;
  token?: string;
}

async function tenantChain(config: ProviderConfig, options: SelftestOptions): Promise<TenantChain> {
  const keyFromFile = options.tenantKeyFile === undefined ? undefined : await readTenantKey(options.tenantKeyFile);
  const network = config.network;
  if (!network) {
    const host = config.devnet.host === '0.0.0.0' ? '127.0.0.1' : config.devnet.host;
    return {
      devnet: true,
      rpcUrl: options.rpcUrl ?? `http://${host}:${config.devnet.port}`,
      chainId: config.devnet.chainId,
      // The dev tenant is funded at deployment; its key is public, as everything on the devnet.
      tenantKey: keyFromFile ?? devPrivateKey(DEV_ACCOUNT.tenant),
    };
  }
  if (!keyFromFile) {
    throw new ProviderError('USAGE', 'off the devnet, selftest pays for its leases from a tenant account you fund', {
      fix: 'pass --tenant-key-file <file> with the private key of a tenant account holding the payment token and gas (not the provider\'s key)',
    });
  }
  return {
    devnet: false,
    rpcUrl: options.rpcUrl ?? network.rpcUrl,
    chainId: network.chainId,
    tenantKey: keyFromFile,
    marketplace: network.marketplaceAddress,
    ...(network.tokenAddress ? { token: network.tokenAddress } : {}),
  };
}

async function readTenantKey(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ProviderError('TENANT_KEY_INVALID', `cannot read the tenant key file ${file}: ${describeError(err)}`, {
      input: file,
      cause: err,
      fix: 'name a readable file whose first line is the tenant\'s private key',
    });
  }
  const parsed = privateKeySchema.safeParse(text.split('\n').find((line) => line.trim() !== '') ?? '');
  if (!parsed.success) {
    // Never echo the file's content: it is meant to be a secret.
    throw new ProviderError('TENANT_KEY_INVALID', `${file} does not hold a private key (${parsed.error.issues[0]?.message ?? 'invalid'})`, {
      input: file,
      fix: 'write the tenant\'s private key (0x + 64 hex digits) as the first line of the file',
    });
  }
  return parsed.data;
}
