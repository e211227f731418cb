import { z } from 'zod';
import { ProviderError } from '../errors';
import { authHeaders, transportOf, type LeaseEndpoint } from './lease-transport';
import { refusal } from './tenant-client';

const mintedWire = z.object({
  tokenId: z.string(),
  token: z.string(),
  leaseId: z.string(),
  port: z.number().nullable(),
  label: z.string().nullable(),
  expiresAt: z.number(),
});
const listWire = z.object({
  tokens: z.array(z.object({ tokenId: z.string(), port: z.number().nullable(), label: z.string().nullable(), createdAt: z.number(), expiresAt: z.number() })),
});

export type MintedAccessToken = z.output<typeof mintedWire>;
export type AccessTokenSummary = z.output<typeof listWire>['tokens'][number];

/**
 * POST /v1/leases/:id/access-tokens (signed): a bearer token that opens the lease's ports (or one
 * port) to whoever holds it, until `ttlSeconds` pass or it is revoked. In a browser:
 * `<api>/v1/leases/<id>/ports/<port>/?access_token=<token>`.
 */
export async function mintAccessToken(
  endpoint: LeaseEndpoint,
  leaseId: bigint | string,
  options: { ttlSeconds: number; port?: number; label?: string; signal?: AbortSignal },
): Promise<MintedAccessToken> {
  const body = { ttlSeconds: options.ttlSeconds, ...(options.port === undefined ? {} : { port: options.port }), ...(options.label === undefined ? {} : { label: options.label }) };
  return leaseRequest(endpoint, 'POST', `/v1/leases/${leaseId}/access-tokens`, body, mintedWire, options.signal);
}

/** GET /v1/leases/:id/access-tokens (signed): the live ones (never their secrets). */
export async function listAccessTokens(endpoint: LeaseEndpoint, leaseId: bigint | string, signal?: AbortSignal): Promise<AccessTokenSummary[]> {
  return (await leaseRequest(endpoint, 'GET', `/v1/leases/${leaseId}/access-tokens`, undefined, listWire, signal)).tokens;
}

/** DELETE /v1/leases/:id/access-tokens/:tokenId (signed): the token opens nothing from now on. */
export async function revokeAccessToken(endpoint: LeaseEndpoint, leaseId: bigint | string, tokenId: string, signal?: AbortSignal): Promise<void> {
  await leaseRequest(endpoint, 'DELETE', `/v1/leases/${leaseId}/access-tokens/${tokenId}`, undefined, undefined, signal);
}

async function leaseRequest<T>(endpoint: LeaseEndpoint, method: string, path: string, body: unknown, schema: z.ZodType<T> | undefined, signal?: AbortSignal): Promise<T> {
  const text = body === undefined ? '' : JSON.stringify(body);
  const headers: Record<string, string> = { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(await authHeaders(endpoint, method, path, text)) };
  const timeout = AbortSignal.timeout(endpoint.timeoutMs ?? 30_000);
  let res: Response;
  try {
    res = await transportOf(endpoint).fetch(`${endpoint.apiUrl.replace(/\/$/, '')}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: text }),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  } catch (err) {
    signal?.throwIfAborted();
    throw new ProviderError('PROVIDER_UNREACHABLE', `${method} ${path}: ${(err as Error).message}`, { cause: err, fix: 'check the provider API URL and that it is up' });
  }
  const raw = await res.text();
  if (!res.ok) throw refusal(res.status, raw);
  if (!schema) return undefined as T;
  let parsed: z.ZodSafeParseResult<T>;
  try {
    parsed = schema.safeParse(JSON.parse(raw));
  } catch {
    throw new ProviderError('PROVIDER_RESPONSE_INVALID', `${method} ${path}: response is not JSON`);
  }
  if (!parsed.success) throw new ProviderError('PROVIDER_RESPONSE_INVALID', `${method} ${path}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}
