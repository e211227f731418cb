import { Wallet, type BaseWallet } from 'ethers';
import { z } from 'zod';
import { ApiServer, AUTH_HEADERS, InMemoryNonceLedger, TenantAuthenticator, type Route } from '../../../src/api';
import { signRequest } from '../../../src/tenant';
import { send } from '../../support/api-harness';
import { ProviderError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { systemClock, type Clock } from '../../../src/util/clock';

const CHAIN_ID = 31337;
const tenant = Wallet.createRandom();
const stranger = Wallet.createRandom();

async function signedHeaders(
  signer: BaseWallet,
  method: string,
  path: string,
  body: string,
  overrides: { expiresAt?: number; nonce?: string; address?: string } = {},
): Promise<Record<string, string>> {
  const headers = await signRequest(signer, CHAIN_ID, method, path, body, overrides);
  if (overrides.address) headers[AUTH_HEADERS.address] = overrides.address;
  return { 'content-type': 'application/json', ...headers };
}

describe('ApiServer', () => {
  const clock: Clock = systemClock;
  let server: ApiServer;
  let port: number;

  const echo: Route<{ gpus: number; image: string }> = {
    method: 'POST',
    path: '/v1/echo/:id',
    auth: 'tenant',
    body: z.strictObject({ gpus: z.number().int().min(0).max(8), image: z.string().min(1) }),
    handler: ({ params, body, tenant: who }) => ({ json: { id: params.id, body, tenant: who, big: 10n ** 30n } }),
  };
  const routes: Route<never>[] = [
    { method: 'GET', path: '/healthz', auth: 'none', handler: () => ({ text: 'ok\n' }) },
    echo as Route<never>,
    { method: 'GET', path: '/v1/boom', auth: 'none', handler: () => { throw new Error('secret internal detail'); } },
    { method: 'GET', path: '/v1/denied', auth: 'none', handler: () => { throw new ProviderError('AUTH_FORBIDDEN', 'not your lease'); } },
  ];

  beforeAll(async () => {
    server = new ApiServer({
      routes,
      authenticator: new TenantAuthenticator({ chainId: CHAIN_ID, maxSignatureAgeSeconds: 300, clock, nonces: new InMemoryNonceLedger(clock) }),
      maxBodyBytes: 1024,
      log: silentLogger(),
    });
    port = (await server.listen('127.0.0.1', 0)).port;
  });

  afterAll(() => server.close());

  it('answers liveness without authentication', async () => {
    const reply = await send(port, 'GET', '/healthz');
    expect({ status: reply.status, body: reply.body }).toEqual({ status: 200, body: 'ok\n' });
  });

  it('serves a request signed by the tenant, and knows who the tenant is', async () => {
    const body = JSON.stringify({ gpus: 1, image: 'busybox' });
    const reply = await send(port, 'POST', '/v1/echo/abc', body, await signedHeaders(tenant, 'POST', '/v1/echo/abc', body));
    expect({ status: reply.status, body: reply.body }).toEqual({ status: 200, body: { id: 'abc', body: { gpus: 1, image: 'busybox' }, tenant: tenant.address, big: '1000000000000000000000000000000' } });
  });

  describe('refuses, with a clear error and a status from the one table', () => {
    const body = JSON.stringify({ gpus: 1, image: 'busybox' });

    it('an unknown route (404) and a wrong method (405)', async () => {
      expect((await send(port, 'GET', '/v1/nothing')).body.error.code).toBe('ROUTE_NOT_FOUND');
      const wrong = await send(port, 'GET', '/v1/echo/abc');
      expect([wrong.status, wrong.body.error.code]).toEqual([405, 'METHOD_NOT_ALLOWED']);
    });

    it('a request with no signature', async () => {
      const reply = await send(port, 'POST', '/v1/echo/abc', body, { 'content-type': 'application/json' });
      expect(reply.status).toBe(401);
      expect(reply.body.error).toMatchObject({ code: 'AUTH_MISSING', message: `${AUTH_HEADERS.address}: missing` });
      expect(reply.body.error.fix).toMatch(/EIP-712/);
    });

    it('a replayed request', async () => {
      const headers = await signedHeaders(tenant, 'POST', '/v1/echo/abc', body);
      expect((await send(port, 'POST', '/v1/echo/abc', body, headers)).status).toBe(200);
      const replay = await send(port, 'POST', '/v1/echo/abc', body, headers);
      expect([replay.status, replay.body.error.code]).toEqual([401, 'AUTH_REPLAYED']);
    });

    it('an expired signature, and one that claims too long a validity', async () => {
      const old = await send(port, 'POST', '/v1/echo/abc', body, await signedHeaders(tenant, 'POST', '/v1/echo/abc', body, { expiresAt: Math.floor(Date.now() / 1000) - 1 }));
      expect(old.body.error.code).toBe('AUTH_EXPIRED');
      const far = await send(port, 'POST', '/v1/echo/abc', body, await signedHeaders(tenant, 'POST', '/v1/echo/abc', body, { expiresAt: Math.floor(Date.now() / 1000) + 3600 }));
      expect(far.body.error).toMatchObject({ code: 'AUTH_EXPIRED', message: expect.stringMatching(/more than 300s ahead/) });
    });

    it('a signature by another key than the address claimed', async () => {
      const headers = await signedHeaders(stranger, 'POST', '/v1/echo/abc', body, { address: tenant.address });
      const reply = await send(port, 'POST', '/v1/echo/abc', body, headers);
      expect([reply.status, reply.body.error.code]).toEqual([401, 'AUTH_BAD_SIGNATURE']);
    });

    it('a body, path or method other than the one signed', async () => {
      const headers = await signedHeaders(tenant, 'POST', '/v1/echo/abc', body);
      const tampered = JSON.stringify({ gpus: 8, image: 'busybox' });
      expect((await send(port, 'POST', '/v1/echo/abc', tampered, headers)).body.error.code).toBe('AUTH_BAD_SIGNATURE');
      const other = await signedHeaders(tenant, 'POST', '/v1/echo/xyz', body);
      expect((await send(port, 'POST', '/v1/echo/abc', body, other)).body.error.code).toBe('AUTH_BAD_SIGNATURE');
    });

    it('a body over the limit, declared or streamed', async () => {
      const big = 'x'.repeat(2048);
      const declared = await send(port, 'POST', '/v1/echo/abc', big, { 'content-length': String(big.length) });
      expect([declared.status, declared.body.error.code]).toEqual([413, 'REQUEST_TOO_LARGE']);
      const streamed = await send(port, 'POST', '/v1/echo/abc', big, { 'transfer-encoding': 'chunked' });
      expect(streamed.status).toBe(413);
    });

    it('a body far over the limit still gets its 413, not a reset connection that loses it', async () => {
      // The server answers after the headers while the client is still sending megabytes: a socket
      // closed with unread data resets, and the reset can discard the reply the client has not read.
      const huge = Buffer.alloc(4 * 1024 * 1024, 0x20);
      for (let i = 0; i < 20; i += 1) {
        const declared = await send(port, 'POST', '/v1/echo/abc', huge, { 'content-length': String(huge.length) });
        expect([declared.status, declared.body.error?.code]).toEqual([413, 'REQUEST_TOO_LARGE']);
        const streamed = await send(port, 'POST', '/v1/echo/abc', huge, { 'transfer-encoding': 'chunked' });
        expect(streamed.status).toBe(413);
      }
    });

    it('a body that is not JSON', async () => {
      const bad = '{"gpus": 1,';
      const reply = await send(port, 'POST', '/v1/echo/abc', bad, await signedHeaders(tenant, 'POST', '/v1/echo/abc', bad));
      expect([reply.status, reply.body.error.code]).toEqual([400, 'REQUEST_INVALID']);
      expect(reply.body.error.message).toMatch(/not valid JSON/);
    });

    it('a body that breaks the schema, naming the field', async () => {
      const bad = JSON.stringify({ gpus: 99, image: 'busybox', privileged: true });
      const reply = await send(port, 'POST', '/v1/echo/abc', bad, await signedHeaders(tenant, 'POST', '/v1/echo/abc', bad));
      expect(reply.status).toBe(400);
      expect(reply.body.error.field).toBe('gpus');
      expect(reply.body.error.message).toMatch(/gpus: .*8.*\(body\): Unrecognized key: "privileged"/);
    });

    it('a route that fails unexpectedly, without leaking the detail, and keeps serving', async () => {
      const reply = await send(port, 'GET', '/v1/boom');
      expect(reply.status).toBe(500);
      expect(JSON.stringify(reply.body)).not.toMatch(/secret internal detail/);
      expect((await send(port, 'GET', '/healthz')).status).toBe(200);
    });

    it('a typed refusal from a handler, with its status', async () => {
      const reply = await send(port, 'GET', '/v1/denied');
      expect([reply.status, reply.body.error.code]).toEqual([403, 'AUTH_FORBIDDEN']);
    });
  });
});
