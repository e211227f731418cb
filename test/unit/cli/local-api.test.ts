import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OperatorClient, fromDaemonOrStore } from '../../../src/cli/local-api';
import { ProviderError } from '../../../src/errors';

/** A real HTTP server answering every request with `status` and `body` (or never, with `hang`). */
async function serve(status: number, body: string, options: { hang?: boolean } = {}): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    if (options.hang) return;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** A port nothing listens on: bound, then closed. */
async function deadPort(): Promise<string> {
  const { url, server } = await serve(200, '{}');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return url;
}

describe('OperatorClient', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  it('calls a refused connection DAEMON_NOT_RUNNING, naming where it asked', async () => {
    const url = await deadPort();
    await expect(new OperatorClient({ baseUrl: url }).status()).rejects.toMatchObject({ code: 'DAEMON_NOT_RUNNING', message: expect.stringContaining(url) });
  });

  it('calls a daemon that does not answer in time DAEMON_UNRESPONSIVE, not down', async () => {
    const { url, server } = await serve(200, '{}', { hang: true });
    servers.push(server);
    await expect(new OperatorClient({ baseUrl: url, timeoutMs: 200 }).leases()).rejects.toMatchObject({ code: 'DAEMON_UNRESPONSIVE' });
  });

  it('turns the daemon\'s error body into a ProviderError with its code and fix', async () => {
    const { url, server } = await serve(403, JSON.stringify({ error: { code: 'OPERATOR_ONLY', message: 'answers only to the provider machine itself', fix: 'ask from the machine' } }));
    servers.push(server);
    await expect(new OperatorClient({ baseUrl: url }).earnings()).rejects.toMatchObject({ code: 'OPERATOR_ONLY', fix: 'ask from the machine' });
  });

  it('keeps a code it does not know in the message', async () => {
    const { url, server } = await serve(500, JSON.stringify({ error: { code: 'FROM_THE_FUTURE', message: 'new' } }));
    servers.push(server);
    await expect(new OperatorClient({ baseUrl: url }).earnings()).rejects.toMatchObject({ code: 'PROVIDER_REFUSED', message: 'FROM_THE_FUTURE: new' });
  });

  it('refuses an answer that is not what the wire schema says', async () => {
    const { url, server } = await serve(200, JSON.stringify({ leases: [{ leaseId: 'x' }] }));
    servers.push(server);
    await expect(new OperatorClient({ baseUrl: url }).leases()).rejects.toMatchObject({ code: 'PROVIDER_RESPONSE_INVALID' });
  });

  it('decodes amounts into bigints', async () => {
    const body = { outcome: 'confirmed', key: 'withdraw:1', amount: '1500000000000000000', txHash: `0x${'ab'.repeat(32)}`, error: null };
    const { url, server } = await serve(200, JSON.stringify(body));
    servers.push(server);
    expect((await new OperatorClient({ baseUrl: url }).withdraw(5)).amount).toBe(1_500_000_000_000_000_000n);
  });
});

describe('fromDaemonOrStore', () => {
  it('answers from the daemon when it answers', async () => {
    const offline = jest.fn(() => 'store');
    expect(await fromDaemonOrStore(async () => 'daemon', offline)).toEqual({ source: 'daemon', value: 'daemon' });
    expect(offline).not.toHaveBeenCalled();
  });

  it('reads the store when the daemon is not running', async () => {
    const down = new ProviderError('DAEMON_NOT_RUNNING', 'nothing answers');
    expect(await fromDaemonOrStore(() => Promise.reject(down), () => 'store')).toEqual({ source: 'store', value: 'store' });
  });

  it.each(['DAEMON_UNRESPONSIVE', 'OPERATOR_ONLY', 'LEASE_NOT_FOUND'] as const)('does not hide %s behind the store', async (code) => {
    const offline = jest.fn(() => 'store');
    await expect(fromDaemonOrStore(() => Promise.reject(new ProviderError(code, 'no')), offline)).rejects.toMatchObject({ code });
    expect(offline).not.toHaveBeenCalled();
  });

  it('with a real refused connection, falls back', async () => {
    const url = await deadPort();
    const client = new OperatorClient({ baseUrl: url });
    expect((await fromDaemonOrStore<unknown>(() => client.status(), () => 'store')).source).toBe('store');
  });
});
