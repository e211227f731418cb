import { createHash } from 'node:crypto';
import { getAddress, verifyTypedData, type TypedDataDomain } from 'ethers';
import { z } from 'zod';
import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import { ETH_ADDRESS } from '../util/eth-address';

/**
 * Tenant requests are signed with EIP-712 over {method, path, bodyHash, expiresAt, nonce}
 * (DESIGN.md §3.2): a wallet shows the tenant exactly what it authorises, and the provider
 * learns the tenant's address from the signature, with no account or session to keep.
 */
export const REQUEST_TYPES = {
  Request: [
    { name: 'method', type: 'string' },
    { name: 'path', type: 'string' },
    { name: 'bodyHash', type: 'bytes32' },
    { name: 'expiresAt', type: 'uint64' },
    { name: 'nonce', type: 'bytes32' },
  ],
};

export const AUTH_HEADERS = {
  address: 'x-tenant-address',
  expiresAt: 'x-auth-expires-at',
  nonce: 'x-auth-nonce',
  signature: 'x-auth-signature',
} as const;

export interface SignedRequest {
  method: string;
  path: string;
  bodyHash: string;
  expiresAt: bigint;
  nonce: string;
}

export function requestDomain(chainId: number | bigint): TypedDataDomain {
  return { name: 'ProviderAPI', version: '1', chainId };
}

export function bodyHash(body: Buffer | string): string {
  return `0x${createHash('sha256').update(body).digest('hex')}`;
}

/** Remembers nonces until their signature expires, so a captured request cannot be replayed. */
export interface NonceLedger {
  /** True when the nonce was unused, and marks it used until `expiresAt` (unix seconds). */
  claim(signer: string, nonce: string, expiresAt: number): boolean;
}

export class InMemoryNonceLedger implements NonceLedger {
  private readonly used = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  claim(signer: string, nonce: string, expiresAt: number): boolean {
    this.prune();
    const key = `${signer.toLowerCase()}:${nonce.toLowerCase()}`;
    if (this.used.has(key)) return false;
    this.used.set(key, expiresAt);
    return true;
  }

  private prune(): void {
    const now = Math.floor(this.clock.now() / 1000);
    for (const [key, expiresAt] of this.used) if (expiresAt < now) this.used.delete(key);
  }
}

const headersSchema = z.object({
  [AUTH_HEADERS.address]: z.string().regex(ETH_ADDRESS, 'expected the tenant address (0x + 40 hex digits)'),
  [AUTH_HEADERS.expiresAt]: z.string().regex(/^\d{1,12}$/, 'expected unix seconds'),
  [AUTH_HEADERS.nonce]: z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'expected 32 random bytes as 0x + 64 hex digits'),
  [AUTH_HEADERS.signature]: z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'expected a 65-byte signature as 0x + 130 hex digits'),
});

export interface TenantAuthOptions {
  chainId: number;
  /** Longest validity a signature may claim; also bounds how long nonces are remembered. */
  maxSignatureAgeSeconds: number;
  clock: Clock;
  nonces: NonceLedger;
}

export class TenantAuthenticator {
  private readonly domain: TypedDataDomain;

  constructor(private readonly options: TenantAuthOptions) {
    this.domain = requestDomain(options.chainId);
  }

  /** Returns the checksummed tenant address, or throws AUTH_* errors that say what to fix. */
  authenticate(method: string, path: string, headers: Record<string, string | string[] | undefined>, body: Buffer): string {
    const parsed = headersSchema.safeParse(headers);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const header = String(issue?.path[0] ?? 'auth headers');
      throw new ProviderError('AUTH_MISSING', `${header}: ${issue?.code === 'invalid_type' ? 'missing' : issue?.message}`, {
        input: header,
        fix: `sign the request with EIP-712 and send ${Object.values(AUTH_HEADERS).join(', ')}`,
      });
    }
    const claimed = getAddress(parsed.data[AUTH_HEADERS.address]);
    const expiresAt = Number(parsed.data[AUTH_HEADERS.expiresAt]);
    const now = Math.floor(this.options.clock.now() / 1000);
    if (expiresAt < now) {
      throw new ProviderError('AUTH_EXPIRED', `request signature expired at ${expiresAt}, it is now ${now}`, {
        fix: 'sign the request again with a later expiresAt',
      });
    }
    if (expiresAt > now + this.options.maxSignatureAgeSeconds) {
      throw new ProviderError('AUTH_EXPIRED', `request signature is valid until ${expiresAt}, more than ${this.options.maxSignatureAgeSeconds}s ahead`, {
        fix: `sign with an expiresAt at most ${this.options.maxSignatureAgeSeconds}s in the future`,
      });
    }
    const request: SignedRequest = {
      method: method.toUpperCase(),
      path,
      bodyHash: bodyHash(body),
      expiresAt: BigInt(expiresAt),
      nonce: parsed.data[AUTH_HEADERS.nonce],
    };
    let signer: string;
    try {
      signer = verifyTypedData(this.domain, REQUEST_TYPES, request, parsed.data[AUTH_HEADERS.signature]);
    } catch {
      throw new ProviderError('AUTH_BAD_SIGNATURE', 'request signature cannot be read', { fix: 'sign the request with EIP-712 (see REQUEST_TYPES)' });
    }
    if (signer !== claimed) {
      // Either another key signed, or the method, path, body or expiry differ from what was signed.
      throw new ProviderError('AUTH_BAD_SIGNATURE', `request is not signed by ${claimed}`, {
        fix: 'sign exactly this method, path, body (SHA-256), expiresAt and nonce with the tenant key',
      });
    }
    if (!this.options.nonces.claim(signer, request.nonce, expiresAt)) {
      throw new ProviderError('AUTH_REPLAYED', 'request nonce was already used', { fix: 'use a fresh random nonce for every request' });
    }
    return signer;
  }
}
