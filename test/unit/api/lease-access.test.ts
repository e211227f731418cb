import { mkdtempSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessTokens } from '../../../src/api/access-tokens';
import { parseExecQuery } from '../../../src/api/exec-server';
import type { AccessibleLease, LeaseDirectory } from '../../../src/api/lease-access';
import { forwardedHeaders } from '../../../src/api/port-proxy';
import { configSchema } from '../../../src/config';
import { ProviderError } from '../../../src/errors';
import { openStore } from '../../../src/store';
import { ManualClock } from '../../../src/util/clock';

const TENANT = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
const lease: AccessibleLease = { leaseId: '7', runtimeId: 'r-7', tenant: TENANT, ports: [{ containerPort: 8888, protocol: 'tcp' }, { containerPort: 53, protocol: 'udp' }] };
const directory: LeaseDirectory = {
  accessible: (leaseId, tenant) => {
    if (leaseId !== '7') throw new ProviderError('LEASE_NOT_FOUND', 'no such lease');
    if (tenant.toLowerCase() !== TENANT.toLowerCase()) throw new ProviderError('AUTH_FORBIDDEN', 'not yours');
    return lease;
  },
};

function tokens(clock: ManualClock): AccessTokens {
  const store = openStore(join(mkdtempSync(join(tmpdir(), 'tokens-')), 's.sqlite'));
  const access = configSchema.parse({ dataDir: '/tmp/x' }).access;
  return new AccessTokens({ store: store.accessTokens, directory, settings: () => ({ ...access, tokens: { maxTtlSeconds: 3600, maxPerLease: 2 } }), clock });
}

function code(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return (err as ProviderError).code;
  }
}

describe('access tokens', () => {
  test('open their lease and port until they expire or are revoked; nothing else', () => {
    const clock = new ManualClock(1_000_000);
    const t = tokens(clock);
    const minted = t.mint('7', TENANT, { ttlSeconds: 600, port: 8888 });
    expect(minted.token).toMatch(/^plt_[0-9a-f]{24}_[A-Za-z0-9_-]{43}$/);
    expect(t.verify(minted.token, '7', 8888)).toBe(lease);
    expect(code(() => t.verify(minted.token, '7', 9999))).toBe('ACCESS_TOKEN_INVALID');
    expect(code(() => t.verify(minted.token, '8', 8888))).toBe('ACCESS_TOKEN_INVALID');
    expect(code(() => t.verify(minted.token.slice(0, -1) + (minted.token.endsWith('A') ? 'B' : 'A'), '7', 8888))).toBe('ACCESS_TOKEN_INVALID');
    expect(code(() => t.verify('plt_nonsense', '7', 8888))).toBe('ACCESS_TOKEN_INVALID');
    clock.advance(600_000);
    expect(code(() => t.verify(minted.token, '7', 8888))).toBe('ACCESS_TOKEN_EXPIRED');
    const other = t.mint('7', TENANT, { ttlSeconds: 600 });
    t.revoke('7', TENANT, other.tokenId);
    expect(code(() => t.verify(other.token, '7', 8888))).toBe('ACCESS_TOKEN_REVOKED');
  });

  test('are minted only by the tenant, for a published TCP port, within the ttl and count bounds', () => {
    const t = tokens(new ManualClock(1_000_000));
    expect(code(() => t.mint('7', '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', { ttlSeconds: 60 }))).toBe('AUTH_FORBIDDEN');
    expect(code(() => t.mint('7', TENANT, { ttlSeconds: 3601 }))).toBe('REQUEST_INVALID');
    expect(code(() => t.mint('7', TENANT, { ttlSeconds: 60, port: 53 }))).toBe('PORT_NOT_PUBLISHED');
    t.mint('7', TENANT, { ttlSeconds: 60 });
    t.mint('7', TENANT, { ttlSeconds: 60 });
    expect(code(() => t.mint('7', TENANT, { ttlSeconds: 60 }))).toBe('RATE_LIMITED');
    expect(t.list('7', TENANT)).toHaveLength(2);
  });
});

describe('the exec query', () => {
  test('takes the command one argument per parameter, a tty and its size; refuses anything else', () => {
    expect(parseExecQuery(new URLSearchParams('command=sh&command=-c&command=echo%20hi&tty=1&cols=80&rows=24'))).toEqual({ command: ['sh', '-c', 'echo hi'], tty: true, cols: 80, rows: 24 });
    expect(parseExecQuery(new URLSearchParams(''))).toEqual({ command: ['/bin/sh'], tty: false });
    expect(code(() => parseExecQuery(new URLSearchParams('cols=0')))).toBe('REQUEST_INVALID');
    expect(code(() => parseExecQuery(new URLSearchParams('user=root')))).toBe('REQUEST_INVALID');
  });
});

describe('headers forwarded to a lease port', () => {
  test('drop hop-by-hop headers and the tenant credentials, keep the rest', () => {
    const req = {
      headers: {
        host: 'provider:8420',
        connection: 'keep-alive, x-secret-hop',
        'x-secret-hop': '1',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'x-auth-signature': '0xabc',
        'x-tenant-address': TENANT,
        authorization: 'Bearer plt_x',
        cookie: 'provider_lease_7=plt_x; app=1; provider_lease_9=other',
        accept: 'text/html',
      },
      socket: { remoteAddress: '10.0.0.9' },
    } as unknown as IncomingMessage;
    const headers = forwardedHeaders(req, { lease, port: 8888, tenant: TENANT, via: 'token', tokenFromQuery: undefined });
    expect(headers).toEqual({
      host: 'provider:8420',
      accept: 'text/html',
      cookie: 'app=1',
      'x-forwarded-for': '10.0.0.9',
      'x-forwarded-host': 'provider:8420',
      'x-forwarded-proto': 'http',
      'x-forwarded-prefix': '/v1/leases/7/ports/8888',
    });
  });
});
