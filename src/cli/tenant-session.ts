import { readFile } from 'node:fs/promises';
import { Wallet, type JsonRpcProvider } from 'ethers';
import { z } from 'zod';
import { createRpcProvider, marketplaceAt } from '../chain';
import type { ProviderConfig } from '../config';
import { DEV_ACCOUNT, devPrivateKey } from '../devnet';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import { TenantClient, registeredPin } from '../tenant';
import { daemonMarketplace } from './local-api';
import type { Clock } from '../util/clock';

/**
 * The tenant the commands that act as one (`selftest`, `dispute`) speak as: on the devnet the dev
 * tenant unless a key file names another; elsewhere the funded account whose key file the
 * operator names, on the configured chain and contracts.
 */

export interface TenantFlags {
  /** A file whose first non-empty line is the tenant's private key. */
  tenantKeyFile?: string | undefined;
  /** The JSON-RPC endpoint the tenant uses (default: network.rpcUrl, or the devnet's). */
  rpcUrl?: string | undefined;
  /** A key already read (from an encrypted keystore): it wins over the key file. */
  tenantKey?: string | undefined;
}

export interface TenantChain {
  devnet: boolean;
  rpcUrl: string;
  chainId: number;
  tenantKey: string;
  /** Off the devnet, the configured contracts: the offer is not trusted to name them. */
  marketplace?: string;
  token?: string;
}

export interface TenantSession {
  tenant: TenantClient;
  chain: TenantChain;
  /** The caller destroys it when done. */
  rpc: JsonRpcProvider;
}

const privateKeySchema = z
  .string()
  .trim()
  .regex(/^(0x)?[0-9a-fA-F]{64}$/, 'expected a private key: 64 hex digits, with or without 0x')
  .transform((key) => (key.startsWith('0x') ? key : `0x${key}`));

/**
 * A TenantClient of the provider at `apiUrl`; `keyNeeded` says, off the devnet, why a key file is
 * required. The client pins the certificate `provider` registered on the marketplace this config
 * names (on the devnet, the one it deployed), read from the chain when first needed: `provider`
 * is asked then too, so a daemon that is down fails the first request, not the session.
 */
export async function openTenantSession(
  config: ProviderConfig,
  flags: TenantFlags,
  options: { apiUrl: string; clock: Clock; keyNeeded: string; provider: () => Promise<string>; log: Logger },
): Promise<TenantSession> {
  const chain = await tenantChain(config, flags, options.keyNeeded);
  const rpc = createRpcProvider(chain.rpcUrl, { chainId: chain.chainId, pollingIntervalMs: chain.devnet ? 250 : 1_000 });
  const tlsPin = async (): Promise<string> => {
    // The provider first: a daemon that is down (or never ran) is what to say, before the chain.
    const provider = await options.provider();
    const marketplace = chain.marketplace ?? daemonMarketplace(config, options.log).marketplace;
    return registeredPin(marketplaceAt(marketplace, rpc), provider);
  };
  const tenant = new TenantClient({
    tlsPin,
    signer: new Wallet(chain.tenantKey, rpc),
    apiUrl: options.apiUrl,
    chainId: chain.chainId,
    chain: rpc,
    ...(chain.marketplace ? { marketplace: chain.marketplace } : {}),
    ...(chain.token ? { token: chain.token } : {}),
    clock: options.clock,
  });
  return { tenant, chain, rpc };
}

export async function tenantChain(config: ProviderConfig, flags: TenantFlags, keyNeeded: string): Promise<TenantChain> {
  const keyFromFile = flags.tenantKey ?? (flags.tenantKeyFile === undefined ? undefined : await readTenantKey(flags.tenantKeyFile));
  const network = config.network;
  if (!network) {
    const host = config.devnet.host === '0.0.0.0' ? '127.0.0.1' : config.devnet.host;
    return {
      devnet: true,
      rpcUrl: flags.rpcUrl ?? `http://${host}:${config.devnet.port}`,
      chainId: config.devnet.chainId,
      // The dev tenant is funded at deployment; its key is public, as everything on the devnet.
      tenantKey: keyFromFile ?? devPrivateKey(DEV_ACCOUNT.tenant),
    };
  }
  if (!keyFromFile) {
    throw new ProviderError('USAGE', `off the devnet, ${keyNeeded}`, {
      fix: 'pass --tenant-key-file <file> with the private key of a tenant account holding the payment token and gas (not the provider\'s key)',
    });
  }
  return {
    devnet: false,
    rpcUrl: flags.rpcUrl ?? network.rpcUrl,
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
