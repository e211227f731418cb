import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Wallet, type BaseWallet } from 'ethers';
import { createProviderApi, InMemoryNonceLedger, ProviderMetrics, RequestRateLimiter, TenantAuthenticator, type ApiServer } from '../../../src/api';
import { marketplaceDomain } from '../../../src/chain';
import { StoreLeaseDirectory } from '../../../src/daemon/lease-directory';
import { silentLogger } from '../../../src/log';
import { ContainerCounterReader, hostKernelFiles } from '../../../src/metering';
import { DockerBackend, type Manifest } from '../../../src/runtime';
import { openStore, type StoredLease, type Store } from '../../../src/store';
import { forwardPort, isRefusedWith, mintAccessToken, openExec, openLeaseSocket, revokeAccessToken, type LeaseEndpoint } from '../../../src/tenant';
import { systemClock, type Clock } from '../../../src/util/clock';
import { aManifest } from '../../fixtures/runtime';
import { CHAIN_ID, send, signed } from '../../support/api-harness';
import { FakeProviderService } from '../../support/fake-provider-service';
import { RuntimeHarness, until } from '../runtime/harness';

jest.setTimeout(90_000);

const LEASE = '7';
const tenant = Wallet.createRandom();
const stranger = Wallet.createRandom();

/** Time the API's tokens and limiter see: the real clock, moved on by the test. */
let skewMs = 0;
const clock: Clock = { now: () => Date.now() + skewMs, sleep: systemClock.sleep };

/** Echoes whatever follows a faked websocket handshake: shows the proxy carries an upgrade and its bytes. */
const FAKE_WS = `while read -r h; do h=$(printf %s "$h" | tr -d '\\r'); [ -z "$h" ] && break; done; printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n'; exec cat`;
const WORKLOAD = [
  'mkdir -p /tmp/www && echo "hello from the lease" > /tmp/www/index.html',
  'httpd -p 8080 -h /tmp/www',
  `printf '%s\\n' '${FAKE_WS.replace(/'/g, `'\\''`)}' > /tmp/ws.sh && chmod +x /tmp/ws.sh`,
  '(nc -ll -p 9000 -e cat &)',
  '(nc -ll -p 9001 -e /tmp/ws.sh &)',
  'exec sleep 3600',
].join('; ');

const h = new RuntimeHarness({ runtime: { nofileLimit: 4096, portRange: { from: 41_000 + (process.pid % 500) * 8, to: 41_007 + (process.pid % 500) * 8 } } });
let runtimeId: string;
let store: Store;
let api: ApiServer;
let port: number;
let endpoint: LeaseEndpoint;

function backend(): DockerBackend {
  return new DockerBackend({ ...h, counters: new ContainerCounterReader(hostKernelFiles()), clock: systemClock, log: silentLogger() });
}

async function startApi(): Promise<void> {
  const marketplace = Wallet.createRandom().address;
  const providerKey = Wallet.createRandom();
  api = createProviderApi({
    service: new FakeProviderService({ providerKey, domain: marketplaceDomain(CHAIN_ID, marketplace), chainId: CHAIN_ID, marketplace }),
    metrics: new ProviderMetrics(),
    limiter: new RequestRateLimiter(h.config.admission.rateLimit, clock),
    authenticator: new TenantAuthenticator({ chainId: CHAIN_ID, maxSignatureAgeSeconds: 300, clock: systemClock, nonces: new InMemoryNonceLedger(systemClock) }),
    maxBodyBytes: 64 * 1024,
    log: silentLogger(),
    access: {
      directory: new StoreLeaseDirectory(store),
      backend: backend(),
      audit: store.execSessions,
      tokens: store.accessTokens,
      settings: () => ({ ...h.config.access, exec: { ...h.config.access.exec, maxSessionsPerLease: 2 } }),
      clock,
    },
  });
  ({ port } = await api.listen('127.0.0.1', 0));
  endpoint = { apiUrl: `http://127.0.0.1:${port}`, signer: tenant, chainId: CHAIN_ID };
}

function storeLease(manifest: Manifest): void {
  const nonce = LEASE;
  store.quotes.insert({
    nonce,
    quoteHash: `0x${'1'.repeat(64)}`,
    tenant: tenant.address,
    manifest: manifest as unknown as Record<string, unknown>,
    manifestHash: `0x${'0'.repeat(64)}`,
    quote: { provider: tenant.address, tenant: tenant.address, manifestHash: `0x${'0'.repeat(64)}`, rates: { perSecond: 1n, perCpuSecond: 1n, perGpuSecond: 1n, perGiBEgress: 1n }, allocation: { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: 0n }, maxDuration: 600n, expiresAt: 2n ** 40n, nonce: 7n },
    signature: '0x',
    allocation: { cpuMillis: 1000, memoryBytes: 256 << 20, diskBytes: 0, gpuUuids: [], gpuModels: [], hostPorts: [] },
    expiresAt: 2 ** 40,
    state: 'used',
    createdAt: 1_700_000_000,
  });
  const lease: StoredLease = {
    leaseId: LEASE, runtimeId, quoteNonce: nonce, tenant: tenant.address, manifestHash: `0x${'0'.repeat(64)}`,
    deposit: 10n ** 17n, rates: { perSecond: 1n, perCpuSecond: 2n, perGpuSecond: 3n, perGiBEgress: 4n }, allocation: { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: 0n }, maxDuration: 600,
    openedAt: 1_700_000_000, state: 'running', endReason: null, exitCode: null, detail: '', closedAt: null,
    containerId: 'c', startedAt: 1_700_000_001, endedAt: null, imageDigest: null, timeline: null,
    resultDigest: null, logsSha256: null, updatedAt: 1_700_000_010,
  };
  store.leases.insert(lease, { fromState: 'quoted', toState: 'running', event: 'lease-opened', reason: 'test', at: 1_700_000_000 });
}

beforeAll(async () => {
  store = openStore(join(mkdtempSync(join(tmpdir(), 'lease-access-')), 'store.sqlite'));
  runtimeId = h.leaseId('access');
  const manifest = aManifest({ command: ['sh', '-c'], args: [WORKLOAD], ports: [{ containerPort: 8080, protocol: 'tcp' }, { containerPort: 9000, protocol: 'tcp' }, { containerPort: 9001, protocol: 'tcp' }] });
  const from = h.config.runtime.portRange.from;
  await h.runtime.start({ manifest, allocation: h.allocation(runtimeId, manifest, { hostPorts: [from, from + 1, from + 2] }), imageId: await h.imageId() });
  storeLease(manifest);
  await startApi();
  await until('the lease serves http', async () => ((await h.execIn(runtimeId, 'wget -qO- http://127.0.0.1:8080/index.html')).code === 0 ? true : undefined));
});

afterAll(async () => {
  await api?.close();
  store?.close();
  await h.cleanup();
});

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function refusedCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'opened';
  } catch (err) {
    return (err as { remoteCode?: string; code: string }).remoteCode ?? (err as { code: string }).code;
  }
}

describe('a shell in the lease', () => {
  test('runs a command in the container: its stdout, stderr and exit code; audited without its input', async () => {
    const out = collect();
    const err = collect();
    const session = await openExec(endpoint, LEASE, { command: ['sh', '-c', 'read secret; echo "out $(hostname)"; echo err >&2; exit 3'], stdout: out.stream, stderr: err.stream });
    session.write('hunter2\n');
    expect(await session.exit).toBe(3);
    expect(out.text()).toMatch(/^out \S+\n$/);
    expect(err.text()).toBe('err\n');
    const audited = await until('the audit row', async () => store.execSessions.forLease(LEASE).find((r) => r.exitCode === 3));
    expect(audited).toMatchObject({ tenant: tenant.address, command: ['sh', '-c', 'read secret; echo "out $(hostname)"; echo err >&2; exit 3'], tty: false, outcome: 'exited' });
    expect(JSON.stringify(store.execSessions.forLease(LEASE))).not.toContain('hunter2');
  });

  test('a terminal: the size it opened with, then a resize, as `stty size` sees them', async () => {
    const out = collect();
    const session = await openExec(endpoint, LEASE, { command: ['sh'], tty: true, size: { cols: 100, rows: 30 }, stdout: out.stream });
    session.write('stty size\n');
    await until('the first size', async () => (out.text().includes('30 100') ? true : undefined));
    session.resize(160, 50);
    await until('the resize', async () => {
      session.write('stty size\n');
      return out.text().includes('50 160') ? true : undefined;
    });
    session.write('exit 7\n');
    expect(await session.exit).toBe(7);
  });

  test("another tenant's signature is refused, and so is a lease that does not exist", async () => {
    expect(await refusedCode(openExec({ ...endpoint, signer: stranger }, LEASE, { command: ['true'] }))).toBe('AUTH_FORBIDDEN');
    expect(await refusedCode(openExec(endpoint, '999', { command: ['true'] }))).toBe('LEASE_NOT_FOUND');
  });

  test('1,000 attempts in a burst are each opened or refused with a code; the lease runs on and a later session works', async () => {
    skewMs += 120_000;
    const outcomes: string[] = [];
    const held: { close(): void }[] = [];
    for (let batch = 0; batch < 10; batch += 1) {
      const attempts = Array.from({ length: 100 }, async () => {
        try {
          const session = await openExec(endpoint, LEASE, { command: ['sleep', '30'] });
          held.push(session);
          return 'opened';
        } catch (err) {
          return (err as { remoteCode?: string }).remoteCode ?? String(err);
        }
      });
      outcomes.push(...(await Promise.all(attempts)));
    }
    const counts = outcomes.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o]: (acc[o] ?? 0) + 1 }), {});
    expect(Object.keys(counts).sort()).toEqual(['EXEC_SESSIONS_EXHAUSTED', 'RATE_LIMITED', 'opened']);
    expect(counts.opened).toBe(2);
    expect(counts.RATE_LIMITED).toBeGreaterThan(980);
    for (const session of held) session.close();
    expect((await h.runtime.status(runtimeId)).running).toBe(true);
    skewMs += 120_000;
    await until('the sessions closed', async () => (store.execSessions.forLease(LEASE).filter((r) => r.outcome === null).length === 0 ? true : undefined));
    const out = collect();
    const session = await openExec(endpoint, LEASE, { command: ['echo', 'still here'], stdout: out.stream });
    expect(await session.exit).toBe(0);
    expect(out.text()).toBe('still here\n');
  });

  test('a new API over the same store and container (a daemon restart) opens a session at once', async () => {
    await api.close();
    skewMs += 120_000;
    await startApi();
    const out = collect();
    const session = await openExec(endpoint, LEASE, { command: ['cat', '/tmp/www/index.html'], stdout: out.stream });
    expect(await session.exit).toBe(0);
    expect(out.text()).toBe('hello from the lease\n');
  });
});

describe("the lease's ports through the API port", () => {
  const path = `/v1/leases/${LEASE}/ports/8080/index.html`;

  test('HTTP to the lease with the tenant signature; none, a stranger, an unpublished port are refused with their codes', async () => {
    const ok = await send(port, 'GET', path, undefined, await signed(tenant, 'GET', path));
    expect([ok.status, ok.text]).toEqual([200, 'hello from the lease\n']);
    expect((await send(port, 'GET', path)).body.error.code).toBe('AUTH_MISSING');
    expect((await send(port, 'GET', path, undefined, await signed(stranger, 'GET', path))).body.error.code).toBe('AUTH_FORBIDDEN');
    const closed = `/v1/leases/${LEASE}/ports/8081/index.html`;
    const refused = await send(port, 'GET', closed, undefined, await signed(tenant, 'GET', closed));
    expect([refused.status, refused.body.error.code]).toEqual([403, 'PORT_NOT_PUBLISHED']);
  });

  test('a token in a browser: the query once, a cookie after; revoked or expired it opens nothing', async () => {
    const minted = await mintAccessToken(endpoint, LEASE, { ttlSeconds: 600, port: 8080, label: 'browser' });
    const first = await send(port, 'GET', `${path}?access_token=${minted.token}`);
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe(path);
    const cookie = String(first.headers['set-cookie']).split(';')[0] as string;
    expect(cookie).toBe(`provider_lease_${LEASE}=${minted.token}`);
    const page = await send(port, 'GET', path, undefined, { cookie });
    expect([page.status, page.text]).toEqual([200, 'hello from the lease\n']);
    const bearer = await send(port, 'GET', path, undefined, { authorization: `Bearer ${minted.token}` });
    expect(bearer.status).toBe(200);
    // Scoped to port 8080: the echo port is not opened by it.
    expect((await refusedCode(openLeaseSocket(endpoint, `/v1/leases/${LEASE}/tunnel/9000`, { token: minted.token })))).toBe('ACCESS_TOKEN_INVALID');
    await revokeAccessToken(endpoint, LEASE, minted.tokenId);
    const revoked = await send(port, 'GET', path, undefined, { cookie });
    expect([revoked.status, revoked.body.error.code]).toEqual([401, 'ACCESS_TOKEN_REVOKED']);
    const short = await mintAccessToken(endpoint, LEASE, { ttlSeconds: 60 });
    skewMs += 61_000;
    const expired = await send(port, 'GET', path, undefined, { authorization: `Bearer ${short.token}` });
    expect([expired.status, expired.body.error.code]).toEqual([401, 'ACCESS_TOKEN_EXPIRED']);
    const forged = await send(port, 'GET', path, undefined, { authorization: `Bearer plt_${short.tokenId}_${'A'.repeat(43)}` });
    expect(forged.body.error.code).toBe('ACCESS_TOKEN_INVALID');
    expect(await refusedCode(mintAccessToken({ ...endpoint, signer: stranger }, LEASE, { ttlSeconds: 60 }))).toBe('AUTH_FORBIDDEN');
  });

  test('an upgrade through the proxy reaches the lease and carries bytes both ways', async () => {
    const minted = await mintAccessToken(endpoint, LEASE, { ttlSeconds: 600, port: 9001 });
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: `/v1/leases/${LEASE}/ports/9001/socket`, headers: { connection: 'Upgrade', upgrade: 'websocket', authorization: `Bearer ${minted.token}` } });
      req.once('upgrade', (res, socket) => {
        expect(res.statusCode).toBe(101);
        let seen = '';
        socket.on('data', (c: Buffer) => {
          seen += c.toString('utf8');
          if (seen.includes('ping through\n')) {
            socket.destroy();
            resolve(seen);
          }
        });
        socket.write('ping through\n');
      });
      req.once('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.once('error', reject);
      req.end();
    });
    expect(echoed).toBe('ping through\n');
  });

  test('a raw TCP echo through a tunnel on a local port; an unpublished port is refused', async () => {
    const forward = await forwardPort(endpoint, LEASE, 9000);
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(forward.address.port, '127.0.0.1', () => socket.write('echo me\n'));
        let seen = '';
        socket.on('data', (c: Buffer) => {
          seen += c.toString('utf8');
          if (seen.includes('\n')) {
            socket.end();
            resolve(seen);
          }
        });
        socket.once('error', reject);
      });
      expect(reply).toBe('echo me\n');
    } finally {
      await forward.close();
    }
    const refused = await openLeaseSocket(endpoint, `/v1/leases/${LEASE}/tunnel/2222`).catch((err: unknown) => err);
    expect(isRefusedWith(refused, 'PORT_NOT_PUBLISHED')).toBe(true);
    expect(await refusedCode(openLeaseSocket({ ...endpoint, signer: stranger }, `/v1/leases/${LEASE}/tunnel/9000`))).toBe('AUTH_FORBIDDEN');
  });
});
