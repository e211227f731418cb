import { randomBytes } from 'node:crypto';
import type { Signer } from 'ethers';
import { AUTH_HEADERS, bodyHash, REQUEST_TYPES, requestDomain } from '../api';

export interface SignOptions {
  /** Unix seconds; default: 60 s from now. */
  expiresAt?: number;
  /** 0x + 64 hex digits; default: fresh random bytes. */
  nonce?: string;
}

/**
 * The headers that authenticate one tenant request to a provider's API: an EIP-712 signature
 * over the method, the path (with its query), the body's SHA-256, an expiry and a nonce.
 */
export async function signRequest(
  signer: Signer,
  chainId: number,
  method: string,
  path: string,
  body: string | Buffer,
  options: SignOptions = {},
): Promise<Record<string, string>> {
  const expiresAt = options.expiresAt ?? Math.floor(Date.now() / 1000) + 60;
  const nonce = options.nonce ?? `0x${randomBytes(32).toString('hex')}`;
  const signature = await signer.signTypedData(requestDomain(chainId), REQUEST_TYPES, {
    method: method.toUpperCase(),
    path,
    bodyHash: bodyHash(body),
    expiresAt,
    nonce,
  });
  return {
    [AUTH_HEADERS.address]: await signer.getAddress(),
    [AUTH_HEADERS.expiresAt]: String(expiresAt),
    [AUTH_HEADERS.nonce]: nonce,
    [AUTH_HEADERS.signature]: signature,
  };
}
