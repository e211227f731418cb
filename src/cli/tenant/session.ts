import type { Command } from 'commander';
import { Wallet, type JsonRpcProvider } from 'ethers';
import { z } from 'zod';
import { createRpcProvider, loadKeystore, marketplaceAt, type MarketplaceContract } from '../../chain';
import { ProviderError } from '../../errors';
import { TenantClient } from '../../tenant';
import { commandContext, type CliIo, type CommandContext } from '../context';
import { parseFlags } from '../flags';
import { devnetDeployment } from '../local-api';
import { tenantChain, type TenantChain } from '../tenant-session';
import { ChainDirectory } from './registry';

/**
 * Who the `provider tenant` commands speak as and where: the tenant's key (an encrypted keystore,
 * a key file, or on the devnet the dev tenant), the chain and the marketplace (the configured
 * network, or the devnet this config runs), and a TenantClient per provider: every request to a
 * provider goes through TenantClient, so what it checks (signatures, the chain, the API's TLS pin)
 * every command checks.
 */

export const tenantGroupFlags = z.object({
  json: z.boolean().optional(),
  keyFile: z.string().min(1).optional(),
  keystore: z.string().min(1).optional(),
  keystorePasswordFile: z.string().min(1).optional(),
  keystorePasswordEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name').default('TENANT_KEYSTORE_PASSWORD'),
  rpcUrl: z.url().optional(),
  timeout: z.coerce.number().int().min(1).max(3_600).default(30),
});

export type TenantGroupFlags = z.output<typeof tenantGroupFlags>;

/** The options every tenant command takes, declared once on the group. */
export function addTenantGroupOptions(group: Command): Command {
  return group
    .option('--json', 'print JSON (one object, or one per line for streams)')
    .option('--key-file <file>', 'file whose first line is the tenant\'s private key')
    .option('--keystore <file>', 'the tenant\'s encrypted JSON keystore (as the provider\'s: ethers, geth, cast)')
    .option('--keystore-password-file <file>', 'file whose first line is the keystore password')
    .option('--keystore-password-env <name>', 'environment variable holding the keystore password (default TENANT_KEYSTORE_PASSWORD)')
    .option('--rpc-url <url>', 'JSON-RPC endpoint (default: network.rpcUrl, or the devnet\'s)')
    .option('--timeout <seconds>', 'bound on each request to a provider (default 30)');
}

export interface TenantEnv {
  ctx: CommandContext;
  flags: TenantGroupFlags;
  chain: TenantChain;
  rpc: JsonRpcProvider;
  signer: Wallet;
  marketplace: MarketplaceContract;
  directory: ChainDirectory;
  /** A client of one provider; `provider` is the address the caller expects it to be. */
  clientFor(apiUrl: string, provider?: string): TenantClient;
  close(): void;
}

export function tenantFlagsOf(command: Command): TenantGroupFlags {
  return parseFlags(tenantGroupFlags, command.optsWithGlobals(), 'tenant');
}

export async function openTenantEnv(io: CliIo, command: Command): Promise<TenantEnv> {
  const ctx = commandContext(io, command);
  const flags = tenantFlagsOf(command);
  const { config } = ctx.loaded;
  let tenantKey: string | undefined;
  if (flags.keystore) {
    const wallet = await loadKeystore({ path: flags.keystore, passwordFile: flags.keystorePasswordFile, passwordEnv: flags.keystorePasswordEnv }, io.env);
    tenantKey = wallet.privateKey;
  }
  const chain = await tenantChain(config, { tenantKeyFile: flags.keyFile, rpcUrl: flags.rpcUrl, tenantKey }, 'a tenant command signs as the tenant: pass --keystore <file> or --key-file <file>');
  let marketplaceAddress = chain.marketplace;
  if (!marketplaceAddress) {
    marketplaceAddress = devnetDeployment(config, ctx.log)?.marketplaceAddress;
    if (!marketplaceAddress) {
      throw new ProviderError('STORE_NOT_FOUND', `the devnet of ${config.dataDir} has not been deployed yet`, {
        fix: 'start the provider on the devnet first (`provider start` in another terminal), with the same config or --data-dir',
      });
    }
  }
  const rpc = createRpcProvider(chain.rpcUrl, { chainId: chain.chainId, pollingIntervalMs: chain.devnet ? 250 : 1_000 });
  const signer = new Wallet(chain.tenantKey, rpc);
  const marketplace = marketplaceAt(marketplaceAddress, rpc);
  const fromBlock = config.network?.startBlock ?? 0;
  const market = marketplaceAddress;
  return {
    ctx,
    flags,
    chain,
    rpc,
    signer,
    marketplace,
    directory: new ChainDirectory(rpc, marketplace, fromBlock),
    clientFor: (apiUrl, provider) =>
      new TenantClient({
        signer,
        apiUrl,
        chainId: chain.chainId,
        chain: rpc,
        marketplace: market,
        ...(chain.token ? { token: chain.token } : {}),
        ...(provider ? { provider } : {}),
        clock: io.clock,
        requestTimeoutMs: flags.timeout * 1000,
      }),
    close: () => rpc.destroy(),
  };
}

/** Runs `body` with a tenant env, closing its RPC connection after. */
export async function withTenantEnv<T>(io: CliIo, command: Command, body: (env: TenantEnv) => Promise<T>): Promise<T> {
  const env = await openTenantEnv(io, command);
  try {
    return await body(env);
  } finally {
    env.close();
  }
}

/** A lease id is a uint256: (provider << 96) | quote nonce, written in decimal. */
const leaseIdSchema = z
  .string()
  .regex(/^\d{1,78}$/, 'expected a lease id: a whole number as `provider tenant leases` prints it')
  .transform(BigInt)
  .refine((id) => id < 2n ** 256n, 'a lease id fits in 256 bits');

export function parseLeaseId(raw: string): bigint {
  const parsed = leaseIdSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new ProviderError('USAGE', `lease id ${raw.slice(0, 80)}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, { input: raw.slice(0, 80), fix: 'pass a lease id as `provider tenant leases` prints it' });
}

/** The client of a lease's provider: --api-url when given, else the API its provider registered. */
export async function leaseClient(env: TenantEnv, leaseId: bigint, apiUrl: string | undefined): Promise<{ client: TenantClient; provider: string; apiUrl: string }> {
  const found = await env.directory.apiUrlOfLease(leaseId);
  const url = apiUrl ?? found.apiUrl;
  return { client: env.clientFor(url, found.provider), provider: found.provider, apiUrl: url };
}

/** JSON with bigints as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}
