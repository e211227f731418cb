import { isProviderError } from '../../errors';
import type { Clock } from '../../util/clock';
import type { ProviderListing } from './offers';
import { readMetadata, type Registration } from './registry';
import type { TenantEnv } from './session';

/** At most this many offers are asked for at once. */
export const OFFER_CONCURRENCY = 8;

/**
 * Every active registered provider with its live offer, asked in parallel (at most
 * OFFER_CONCURRENCY at a time), each bounded by `timeoutMs`: a provider that does not answer in
 * time is listed as unreachable, with the code of why.
 */
export async function discoverProviders(env: Pick<TenantEnv, 'directory' | 'clientFor'>, options: { timeoutMs: number; clock: Clock; signal?: AbortSignal }): Promise<ProviderListing[]> {
  const registrations = (await env.directory.registrations(options.signal)).filter((r) => r.active);
  const out: ProviderListing[] = new Array(registrations.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < registrations.length) {
      const i = next++;
      out[i] = await listing(env, registrations[i] as Registration, options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(OFFER_CONCURRENCY, registrations.length) }, worker));
  return out;
}

async function listing(env: Pick<TenantEnv, 'clientFor'>, registration: Registration, options: { timeoutMs: number; clock: Clock; signal?: AbortSignal }): Promise<ProviderListing> {
  const { region, tlsPin } = readMetadata(registration.metadata);
  const base = { provider: registration.provider, apiUrl: registration.apiUrl, region, tlsPin };
  const started = options.clock.now();
  const signal = options.signal ? AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)]) : AbortSignal.timeout(options.timeoutMs);
  try {
    const offer = await env.clientFor(registration.apiUrl, registration.provider).offer(signal);
    return { ...base, offer, unreachable: null, latencyMs: options.clock.now() - started };
  } catch (err) {
    const code = isProviderError(err) ? err.code : 'PROVIDER_UNREACHABLE';
    const message = signal.aborted && !options.signal?.aborted ? `no offer within ${options.timeoutMs} ms` : (err as Error).message;
    return { ...base, offer: null, unreachable: { code, message }, latencyMs: null };
  }
}
