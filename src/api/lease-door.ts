import type { IncomingMessage } from 'node:http';
import { ProviderError } from '../errors';
import { publishedPort, type AccessTokens } from './access-tokens';
import type { AccessibleLease, LeaseDirectory } from './lease-access';
import { AUTH_HEADERS, type TenantAuthenticator } from './tenant-auth';

/** Where a browser hands its token on first use; the proxy drops it before the lease sees the URL. */
export const TOKEN_QUERY = 'access_token';

/** The cookie that carries a lease's token after first use, scoped to the lease's path. */
export function tokenCookieName(leaseId: string): string {
  return `provider_lease_${leaseId}`;
}

export interface DoorPass {
  lease: AccessibleLease;
  port: number;
  tenant: string;
  via: 'signature' | 'token';
  /** The token came in the query: it goes in a cookie, so the page's relative links keep access. */
  tokenFromQuery: string | undefined;
}

/**
 * Who may reach a lease's port through the API: its tenant, by a signed request (as every tenant
 * route), or whoever holds a token the tenant minted for the lease (and port): from an
 * `Authorization: Bearer` header, the `access_token` query parameter, or the lease's cookie.
 * Only then is the port checked against the manifest, so a stranger learns nothing of the lease.
 */
export class LeaseDoor {
  constructor(private readonly deps: { authenticator: TenantAuthenticator; tokens: AccessTokens; directory: LeaseDirectory }) {}

  admit(req: IncomingMessage, url: URL, body: Buffer, leaseId: string, port: number): DoorPass {
    if (req.headers[AUTH_HEADERS.signature] !== undefined) {
      const tenant = this.deps.authenticator.authenticate(req.method ?? 'GET', url.pathname + url.search, req.headers, body);
      const lease = this.deps.directory.accessible(leaseId, tenant);
      return { lease, port: publishedPort(lease, port), tenant, via: 'signature', tokenFromQuery: undefined };
    }
    const found = presentedToken(req, url, leaseId);
    if (!found) {
      throw new ProviderError('AUTH_MISSING', 'neither a tenant signature nor an access token came with the request', {
        fix: `sign the request as the lease's tenant, or send a token of the lease (Authorization: Bearer <token>, or ?${TOKEN_QUERY}=<token> once in a browser)`,
      });
    }
    const lease = this.deps.tokens.verify(found.token, leaseId, port);
    return { lease, port: publishedPort(lease, port), tenant: lease.tenant, via: 'token', tokenFromQuery: found.fromQuery ? found.token : undefined };
  }
}

function presentedToken(req: IncomingMessage, url: URL, leaseId: string): { token: string; fromQuery: boolean } | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (bearer) return { token: bearer[1] as string, fromQuery: false };
  const query = url.searchParams.get(TOKEN_QUERY);
  if (query) return { token: query, fromQuery: true };
  const cookie = cookiesOf(req.headers.cookie).get(tokenCookieName(leaseId));
  return cookie ? { token: cookie, fromQuery: false } : undefined;
}

export function cookiesOf(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const pair of (header ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at > 0) cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
  }
  return cookies;
}
