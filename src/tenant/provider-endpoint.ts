import { getAddress } from 'ethers';
import type { MarketplaceContract } from '../chain';
import { ProviderError } from '../errors';
import { normalisePin } from '../tls';

/** Where a provider says it is and which certificate it serves there, as its registration has it. */
export interface ProviderEndpoint {
  provider: string;
  apiUrl: string;
  /** The SHA-256 pin of its API certificate (metadata `tls.sha256`); undefined when it registered none. */
  tlsSha256: string | undefined;
}

/** The pin a provider's metadata JSON carries, or undefined (none, or not a pin). */
export function pinFromMetadata(metadata: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadata);
  } catch {
    return undefined;
  }
  const sha256 = (parsed as { tls?: { sha256?: unknown } } | null)?.tls?.sha256;
  return typeof sha256 === 'string' ? normalisePin(sha256) : undefined;
}

/** getProvider(provider) on the marketplace: its API URL and certificate pin. */
export async function resolveProviderEndpoint(marketplace: MarketplaceContract, provider: string, signal?: AbortSignal): Promise<ProviderEndpoint> {
  const info = (await marketplace.read('getProvider', [getAddress(provider)], signal ? { signal } : {})) as unknown as { status: bigint; apiUrl: string; metadata: string };
  if (Number(info.status) === 0) {
    throw new ProviderError('TLS_PIN_MISSING', `${provider} is not registered on marketplace ${marketplace.address}`, {
      input: provider,
      fix: 'check the provider address and the marketplace (and, for your own provider, that `provider start` has registered it)',
    });
  }
  return { provider: getAddress(provider), apiUrl: info.apiUrl, tlsSha256: pinFromMetadata(info.metadata) };
}

/** The registered pin of `provider`; TLS_PIN_MISSING when it registered none (a provider before TLS). */
export async function registeredPin(marketplace: MarketplaceContract, provider: string, signal?: AbortSignal): Promise<string> {
  const endpoint = await resolveProviderEndpoint(marketplace, provider, signal);
  if (!endpoint.tlsSha256) {
    throw new ProviderError('TLS_PIN_MISSING', `provider ${endpoint.provider} has registered no TLS certificate pin (metadata tls.sha256)`, {
      input: endpoint.provider,
      fix: 'the provider must run a version that serves TLS and restart it (it registers its pin at start); until then it cannot be reached safely',
    });
  }
  return endpoint.tlsSha256;
}
