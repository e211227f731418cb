import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { getAddress } from 'ethers';
import { z } from 'zod';
import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import type { AccessibleLease, AccessSettings, AccessTokenStore, LeaseDirectory } from './lease-access';
import { param } from './routes';
import type { Route } from './server';
import { leaseIdParam } from './wire';

/** `plt_<id>_<secret>`: the id finds the row, the secret's SHA-256 must match it. */
const TOKEN_FORMAT = /^plt_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/;

export const mintBodyWire = z
  .strictObject({
    /** Seconds it lives; at most access.tokens.maxTtlSeconds. */
    ttlSeconds: z.number().int().positive(),
    /** The one container port it opens; absent: every published port of the lease. */
    port: z.number().int().min(1).max(65_535).optional(),
    /** A name for the tenant's own list (who it was shared with). */
    label: z.string().max(80).optional(),
  });

export interface MintedToken {
  tokenId: string;
  /** Shown once: the provider keeps only its hash. */
  token: string;
  leaseId: string;
  port: number | null;
  label: string | null;
  /** Unix seconds. */
  expiresAt: number;
}

export interface TokenView {
  tokenId: string;
  port: number | null;
  label: string | null;
  createdAt: number;
  expiresAt: number;
}

/**
 * Per-lease bearer tokens a tenant mints (signed) to share a lease's ports, with a browser say:
 * expiring, revocable, scoped to the lease and optionally one port, stored as hashes only.
 */
export class AccessTokens {
  constructor(
    private readonly deps: { store: AccessTokenStore; directory: LeaseDirectory; settings: () => AccessSettings; clock: Clock },
  ) {}

  private now(): number {
    return Math.floor(this.deps.clock.now() / 1000);
  }

  mint(leaseId: string, tenant: string, body: z.output<typeof mintBodyWire>): MintedToken {
    const lease = this.deps.directory.accessible(leaseId, tenant);
    const { maxTtlSeconds, maxPerLease } = this.deps.settings().tokens;
    if (body.ttlSeconds > maxTtlSeconds) {
      throw new ProviderError('REQUEST_INVALID', `ttlSeconds: at most ${maxTtlSeconds}`, { input: 'ttlSeconds', fix: `ask for ${maxTtlSeconds} s or less, and mint a new token when it expires` });
    }
    if (body.port !== undefined) publishedPort(lease, body.port);
    const now = this.now();
    if (this.deps.store.liveForLease(lease.leaseId, now).length >= maxPerLease) {
      throw new ProviderError('RATE_LIMITED', `lease ${lease.leaseId} has ${maxPerLease} live tokens already`, { fix: 'revoke a token you no longer share (DELETE /v1/leases/:id/access-tokens/:tokenId)' });
    }
    const tokenId = randomBytes(12).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const expiresAt = now + body.ttlSeconds;
    this.deps.store.insert({
      tokenId,
      leaseId: lease.leaseId,
      tenant: getAddress(tenant),
      port: body.port ?? null,
      secretHash: hashOf(secret),
      label: body.label ?? null,
      createdAt: now,
      expiresAt,
      revokedAt: null,
    });
    return { tokenId, token: `plt_${tokenId}_${secret}`, leaseId: lease.leaseId, port: body.port ?? null, label: body.label ?? null, expiresAt };
  }

  list(leaseId: string, tenant: string): TokenView[] {
    const lease = this.deps.directory.accessible(leaseId, tenant);
    return this.deps.store.liveForLease(lease.leaseId, this.now()).map((t) => ({ tokenId: t.tokenId, port: t.port, label: t.label, createdAt: t.createdAt, expiresAt: t.expiresAt }));
  }

  /** Revoking a token twice is fine; another lease's (or tenant's) token is not found. */
  revoke(leaseId: string, tenant: string, tokenId: string): void {
    const lease = this.deps.directory.accessible(leaseId, tenant);
    const stored = this.deps.store.get(tokenId);
    if (!stored || stored.leaseId !== lease.leaseId) {
      throw new ProviderError('ACCESS_TOKEN_INVALID', `lease ${lease.leaseId} has no token ${tokenId.slice(0, 40)}`, { input: 'tokenId', fix: 'name a token this lease minted (GET /v1/leases/:id/access-tokens lists them)' });
    }
    this.deps.store.revoke(tokenId, this.now());
  }

  /**
   * The lease a token opens, checked against the lease and port asked: ACCESS_TOKEN_INVALID for
   * anything else (a wrong secret, another lease's, another port's), _EXPIRED, _REVOKED.
   */
  verify(token: string, leaseId: string, port: number): AccessibleLease {
    const match = TOKEN_FORMAT.exec(token);
    const stored = match ? this.deps.store.get(match[1] as string) : undefined;
    const invalid = new ProviderError('ACCESS_TOKEN_INVALID', 'the access token is not one this provider minted for this lease and port', {
      fix: 'ask the lease\'s tenant for a token of this lease (POST /v1/leases/:id/access-tokens)',
    });
    if (!match || !stored || !sameHash(hashOf(match[2] as string), stored.secretHash)) throw invalid;
    if (stored.leaseId !== leaseId || (stored.port !== null && stored.port !== port)) throw invalid;
    if (stored.revokedAt !== null) throw new ProviderError('ACCESS_TOKEN_REVOKED', 'the access token was revoked by the lease\'s tenant', { fix: 'ask the tenant for a new token' });
    if (stored.expiresAt <= this.now()) {
      throw new ProviderError('ACCESS_TOKEN_EXPIRED', `the access token expired at ${stored.expiresAt}`, { fix: 'ask the tenant to mint a new token' });
    }
    return this.deps.directory.accessible(stored.leaseId, stored.tenant);
  }
}

/** The manifest port `port`, or PORT_NOT_PUBLISHED: the API connects to nothing else of a lease. */
export function publishedPort(lease: AccessibleLease, port: number): number {
  if (!lease.ports.some((p) => p.containerPort === port && p.protocol === 'tcp')) {
    const published = lease.ports.filter((p) => p.protocol === 'tcp').map((p) => p.containerPort);
    throw new ProviderError('PORT_NOT_PUBLISHED', `lease ${lease.leaseId} does not publish TCP port ${port}`, {
      input: port,
      fix: published.length > 0 ? `use one of the manifest's ports: ${published.join(', ')}` : 'the manifest publishes no TCP port: add one under `ports` in a new lease',
    });
  }
  return port;
}

function hashOf(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && timingSafeEqual(left, right);
}

const tokenIdParam = z.string().regex(/^[0-9a-f]{24}$/, 'expected a token id (24 hex digits)');

/** POST (mint), GET (list the live ones) and DELETE (revoke) a lease's access tokens: signed by its tenant. */
export function accessTokenRoutes(tokens: AccessTokens): Route<never>[] {
  const routes: Route<any>[] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    {
      method: 'POST',
      path: '/v1/leases/:id/access-tokens',
      auth: 'tenant',
      body: mintBodyWire,
      handler: ({ params, body, tenant }) => ({ status: 201, json: tokens.mint(param(leaseIdParam, params.id, 'id'), tenantOf(tenant), body) }),
    } satisfies Route<z.output<typeof mintBodyWire>>,
    {
      method: 'GET',
      path: '/v1/leases/:id/access-tokens',
      auth: 'tenant',
      handler: ({ params, tenant }) => ({ json: { tokens: tokens.list(param(leaseIdParam, params.id, 'id'), tenantOf(tenant)) } }),
    },
    {
      method: 'DELETE',
      path: '/v1/leases/:id/access-tokens/:tokenId',
      auth: 'tenant',
      handler: ({ params, tenant }) => {
        tokens.revoke(param(leaseIdParam, params.id, 'id'), tenantOf(tenant), param(tokenIdParam, params.tokenId, 'tokenId'));
        return { status: 204, text: '' };
      },
    },
  ];
  return routes as Route<never>[];
}

function tenantOf(tenant: string | undefined): string {
  if (!tenant) throw new ProviderError('INTERNAL', 'tenant route reached without a tenant');
  return tenant;
}
