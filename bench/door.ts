/**
 * The one door: what serving the API over pinned TLS, and a lease's ports through the API port,
 * costs a request. All in this process on loopback: no Docker, no chain. Client and server share
 * one event loop, so every figure is both sides' CPU together, as on a provider's own machine.
 *
 * 1. The provider API (createProviderApi over the test suite's FakeProviderService), twice: plain
 *    HTTP, and HTTPS with a fresh self-signed certificate. GET /v1/offer one at a time (median,
 *    p95) and --requests of them --concurrency at a time (requests/s):
 *    - `http, fetch` is the baseline every ratio is against (what PinnedTransport does for an http URL);
 *    - `http, node:http keep-alive` is the client stack the pinned agent is built on, without TLS:
 *      the gap between it and the pinned row is TLS itself, the gap to fetch the client library;
 *    - `https, PinnedTransport` is a tenant's kept-alive pinned agent;
 *    - `https, new PinnedTransport each` pays a full handshake and the pin check per request (the
 *      agent caches no TLS sessions).
 * 2. The lease door: a local HTTP server stands in for a lease's published port (the directory
 *    says the lease publishes that port, the backend says the lease lives at 127.0.0.1), reached
 *    with a minted bearer token as /v1/leases/7/ports/<port>/... through the plain and the TLS API,
 *    against fetching the server directly: latency of a small answer, and a --bulk-mib download
 *    (MB/s, best and worst of --bulk-runs; they swing widely on a small machine) read as a stream
 *    with the same client code on every path.
 *
 *   npm run bench -- door [--requests 500] [--concurrency 16] [--handshakes 200] [--bulk-mib 64] [--bulk-runs 5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent as HttpAgent, createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getAddress, Wallet } from 'ethers';
import { createProviderApi, InMemoryNonceLedger, ProviderMetrics, TenantAuthenticator, type AccessibleLease, type ApiServer, type LeaseAccessOptions } from '../src/api';
import { marketplaceDomain } from '../src/chain';
import { configSchema } from '../src/config';
import { ProviderError } from '../src/errors';
import { silentLogger } from '../src/log';
import { openStore } from '../src/store';
import { mintAccessToken, PinnedTransport } from '../src/tenant';
import { generateSelfSigned, inspectCertificate } from '../src/tls';
import { systemClock } from '../src/util/clock';
import { FakeProviderService } from '../test/support/fake-provider-service';

const CHAIN_ID = 31337;
const LEASE = '7';
const MiB = 2 ** 20;

function option(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : fallback;
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

const median = (values: number[]): number => quantile(values, 0.5);
const round = (v: number, digits = 3): number => Number(v.toFixed(digits));

/** A GET answered in full, its bytes counted and dropped: the same client code for every path. */
function streamGet(url: string, options: { agent: HttpAgent | HttpsAgent; headers?: Record<string, string> }): Promise<{ status: number; bytes: number }> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { agent: options.agent, headers: options.headers ?? {} }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Throws unless the answer is a 200; returns the body's length (a check that the path works, not a measure). */
async function expectOk(res: Response, what: string): Promise<number> {
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${what}: status ${res.status}: ${Buffer.from(body).toString('utf8').slice(0, 300)}`);
  return body.byteLength;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** `total` calls of fn, `concurrency` at a time; requests per second over the whole. */
async function throughput(total: number, concurrency: number, fn: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total) {
        next += 1;
        await fn();
      }
    }),
  );
  return total / ((performance.now() - t0) / 1000);
}

interface Mode {
  key: string;
  label: string;
  call: () => Promise<unknown>;
}

/** Runs the modes one request each in turn (so all see the same machine), `rounds` times. */
async function alternate(modes: Mode[], rounds: (mode: Mode) => number): Promise<Map<string, number[]>> {
  const times = new Map(modes.map((m) => [m.key, [] as number[]]));
  const most = Math.max(...modes.map(rounds));
  for (let i = 0; i < most; i += 1) {
    for (const mode of modes) if (i < rounds(mode)) times.get(mode.key)?.push(await timed(mode.call));
  }
  return times;
}

function latencyTable(title: string, modes: Mode[], times: Map<string, number[]>, baseline: string): void {
  const base = median(times.get(baseline) as number[]);
  const width = Math.max(...modes.map((m) => m.label.length));
  const fmt = (v: number): string => `${v.toFixed(3)} ms`.padStart(10);
  console.log(title);
  for (const mode of modes) {
    const values = times.get(mode.key) as number[];
    const m = median(values);
    console.log(`  ${mode.label.padEnd(width)}  median ${fmt(m)}  p95 ${fmt(quantile(values, 0.95))}  (n ${String(values.length).padStart(4)})  ${(m / base).toFixed(2)}x`);
  }
}

export async function run(args: string[]): Promise<void> {
  const requests = option(args, 'requests', 500);
  const concurrency = option(args, 'concurrency', 16);
  const handshakes = option(args, 'handshakes', Math.min(requests, 200));
  const bulkMiB = option(args, 'bulk-mib', 64);
  const bulkRuns = option(args, 'bulk-runs', 5);
  const log = silentLogger();
  const dir = mkdtempSync(join(tmpdir(), 'provider-bench-door-'));
  const store = openStore(join(dir, 'store.sqlite'));
  const tenant = Wallet.createRandom();
  const providerKey = Wallet.createRandom();
  const marketplace = Wallet.createRandom().address;
  const service = new FakeProviderService({ providerKey, domain: marketplaceDomain(CHAIN_ID, marketplace), chainId: CHAIN_ID, marketplace });
  const accessSettings = configSchema.parse({ dataDir: dir }).access;
  const closers: (() => unknown)[] = [];

  // The lease's published port: a small answer, and a bulk one written in 1 MiB chunks as the socket drains.
  const chunk = Buffer.alloc(MiB, 0x61);
  const upstream: Server = createServer((req, res) => {
    if (req.url === '/bulk') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bulkMiB * MiB });
      let left = bulkMiB;
      const pump = (): void => {
        while (left > 0) {
          left -= 1;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello from the lease\n');
  });
  try {
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise<void>((resolve) => (upstream.closeAllConnections(), upstream.close(() => resolve()))));
    const leasePort = (upstream.address() as AddressInfo).port;
    const lease: AccessibleLease = { leaseId: LEASE, runtimeId: 'bench-door', tenant: tenant.address, ports: [{ containerPort: leasePort, protocol: 'tcp' }] };
    const access: LeaseAccessOptions = {
      directory: {
        accessible: (leaseId, who) => {
          if (leaseId !== LEASE) throw new ProviderError('LEASE_NOT_FOUND', `no lease ${leaseId}`);
          if (getAddress(who) !== tenant.address) throw new ProviderError('AUTH_FORBIDDEN', `lease ${leaseId} is another tenant's`);
          return lease;
        },
      },
      backend: {
        openExec: () => Promise.reject(new ProviderError('INTERNAL', 'no shells in this bench')),
        address: async () => '127.0.0.1',
      },
      audit: store.execSessions,
      tokens: store.accessTokens,
      settings: () => accessSettings,
      clock: systemClock,
    };
    const cert = await generateSelfSigned({ hosts: ['127.0.0.1'], validityDays: 2, now: Date.now() });
    const pin = inspectCertificate(cert, Date.now()).sha256;
    const startApi = async (tls: boolean): Promise<string> => {
      const api: ApiServer = createProviderApi({
        service,
        metrics: new ProviderMetrics(),
        authenticator: new TenantAuthenticator({ chainId: CHAIN_ID, maxSignatureAgeSeconds: 300, clock: systemClock, nonces: new InMemoryNonceLedger(systemClock) }),
        maxBodyBytes: 64 * 1024,
        log,
        access,
        ...(tls ? { tls: { cert: cert.certPem, key: cert.keyPem } } : {}),
      });
      const { port } = await api.listen('127.0.0.1', 0);
      closers.unshift(() => api.close());
      return `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    };
    const plainUrl = await startApi(false);
    const tlsUrl = await startApi(true);
    const pinned = new PinnedTransport(tlsUrl, pin);
    closers.unshift(() => pinned.close());
    const nodeAgent = new HttpAgent({ keepAlive: true });
    closers.unshift(() => nodeAgent.destroy());
    const pinnedAgent = (await pinned.webSocketOptions()).agent as HttpsAgent;

    console.log(`door: ${requests} requests per row, ${concurrency} at a time for throughput; ${handshakes} fresh handshakes; ${bulkMiB} MiB downloads, best of ${bulkRuns}`);

    // ---- 1. the API over pinned TLS against plain HTTP
    const offer = '/v1/offer';
    const apiModes: Mode[] = [
      { key: 'http_fetch', label: 'http, fetch (baseline)', call: async () => expectOk(await fetch(plainUrl + offer), 'http fetch') },
      { key: 'http_node', label: 'http, node:http keep-alive', call: () => streamGet(plainUrl + offer, { agent: nodeAgent }) },
      { key: 'https_pinned', label: 'https, PinnedTransport (kept alive)', call: async () => expectOk(await pinned.fetch(tlsUrl + offer, { method: 'GET' }), 'pinned') },
      {
        key: 'https_fresh',
        label: 'https, new PinnedTransport each (handshake)',
        call: async () => {
          const fresh = new PinnedTransport(tlsUrl, pin);
          try {
            return await expectOk(await fresh.fetch(tlsUrl + offer, { method: 'GET' }), 'fresh pinned');
          } finally {
            fresh.close();
          }
        },
      },
    ];
    // Warm-up: JIT, connection pools, the first handshake are not what is measured.
    await alternate(apiModes, () => 30);
    const apiTimes = await alternate(apiModes, (m) => (m.key === 'https_fresh' ? handshakes : requests));
    latencyTable(`GET ${offer}, one at a time`, apiModes, apiTimes, 'http_fetch');
    const apiMedian = (key: string): number => median(apiTimes.get(key) as number[]);
    console.log(`  TLS per request on a kept-alive connection  ${(apiMedian('https_pinned') - apiMedian('http_node')).toFixed(3)} ms (pinned - node:http)`);
    console.log(`  a full handshake and the pin check          ${(apiMedian('https_fresh') - apiMedian('https_pinned')).toFixed(3)} ms (fresh - kept alive)`);

    const rps = new Map<string, number>();
    console.log(`GET ${offer}, ${requests} requests, ${concurrency} at a time`);
    for (const mode of apiModes.filter((m) => m.key !== 'https_fresh')) rps.set(mode.key, await throughput(requests, concurrency, mode.call));
    const width = Math.max(...apiModes.map((m) => m.label.length));
    for (const mode of apiModes.filter((m) => m.key !== 'https_fresh')) {
      const r = rps.get(mode.key) as number;
      console.log(`  ${mode.label.padEnd(width)}  ${r.toFixed(0).padStart(6)} req/s  ${(r / (rps.get('http_fetch') as number)).toFixed(2)}x`);
    }

    // ---- 2. a lease's port through the door against the server itself
    const minted = await mintAccessToken({ apiUrl: plainUrl, signer: tenant, chainId: CHAIN_ID }, LEASE, { ttlSeconds: 3_600, port: leasePort, label: 'bench' });
    const bearer = { authorization: `Bearer ${minted.token}` };
    const direct = `http://127.0.0.1:${leasePort}`;
    const doorPath = `/v1/leases/${LEASE}/ports/${leasePort}`;
    const doorModes: Mode[] = [
      { key: 'direct', label: 'direct to the port, fetch (baseline)', call: async () => expectOk(await fetch(`${direct}/small`), 'direct') },
      { key: 'door_http', label: 'door over http, fetch + token', call: async () => expectOk(await fetch(`${plainUrl}${doorPath}/small`, { headers: bearer }), 'door http') },
      { key: 'door_https', label: 'door over https, PinnedTransport + token', call: async () => expectOk(await pinned.fetch(`${tlsUrl}${doorPath}/small`, { method: 'GET', headers: bearer }), 'door https') },
    ];
    await alternate(doorModes, () => 30);
    const doorTimes = await alternate(doorModes, () => requests);
    latencyTable(`GET <lease port>/small (${Buffer.byteLength('hello from the lease\n')} bytes), one at a time`, doorModes, doorTimes, 'direct');

    const bulkModes: { key: string; label: string; url: string; agent: HttpAgent | HttpsAgent; headers?: Record<string, string> }[] = [
      { key: 'direct', label: 'direct to the port (baseline)', url: `${direct}/bulk`, agent: nodeAgent },
      { key: 'door_http', label: 'door over http', url: `${plainUrl}${doorPath}/bulk`, agent: nodeAgent, headers: bearer },
      { key: 'door_https', label: 'door over https (pinned agent)', url: `${tlsUrl}${doorPath}/bulk`, agent: pinnedAgent, headers: bearer },
    ];
    const mbps = new Map<string, number[]>(bulkModes.map((m) => [m.key, []]));
    for (let i = 0; i < bulkRuns; i += 1) {
      for (const mode of bulkModes) {
        const t0 = performance.now();
        const got = await streamGet(mode.url, { agent: mode.agent, ...(mode.headers ? { headers: mode.headers } : {}) });
        const seconds = (performance.now() - t0) / 1000;
        if (got.status !== 200 || got.bytes !== bulkMiB * MiB) throw new Error(`${mode.label}: status ${got.status}, ${got.bytes} bytes`);
        mbps.get(mode.key)?.push(got.bytes / 1e6 / seconds);
      }
    }
    const best = (key: string): number => Math.max(...(mbps.get(key) as number[]));
    const bulkWidth = Math.max(...bulkModes.map((m) => m.label.length));
    console.log(`GET <lease port>/bulk (${bulkMiB} MiB), best of ${bulkRuns}`);
    for (const mode of bulkModes) {
      const worst = Math.min(...(mbps.get(mode.key) as number[]));
      console.log(`  ${mode.label.padEnd(bulkWidth)}  ${best(mode.key).toFixed(0).padStart(6)} MB/s  (worst ${worst.toFixed(0).padStart(5)})  ${(best(mode.key) / best('direct')).toFixed(2)}x`);
    }

    const doorMedian = (key: string): number => median(doorTimes.get(key) as number[]);
    console.log(
      JSON.stringify({
        requests,
        concurrency,
        offer_http_fetch_ms_median: round(apiMedian('http_fetch')),
        offer_http_fetch_ms_p95: round(quantile(apiTimes.get('http_fetch') as number[], 0.95)),
        offer_http_node_ms_median: round(apiMedian('http_node')),
        offer_https_pinned_ms_median: round(apiMedian('https_pinned')),
        offer_https_pinned_ms_p95: round(quantile(apiTimes.get('https_pinned') as number[], 0.95)),
        ratio_https_pinned: round(apiMedian('https_pinned') / apiMedian('http_fetch')),
        offer_https_fresh_ms_median: round(apiMedian('https_fresh')),
        ratio_https_fresh: round(apiMedian('https_fresh') / apiMedian('http_fetch')),
        offer_http_fetch_rps: round(rps.get('http_fetch') as number, 0),
        offer_http_node_rps: round(rps.get('http_node') as number, 0),
        offer_https_pinned_rps: round(rps.get('https_pinned') as number, 0),
        ratio_rps_https_pinned: round((rps.get('https_pinned') as number) / (rps.get('http_fetch') as number)),
        port_direct_ms_median: round(doorMedian('direct')),
        port_door_http_ms_median: round(doorMedian('door_http')),
        port_door_https_ms_median: round(doorMedian('door_https')),
        ratio_door_https: round(doorMedian('door_https') / doorMedian('direct')),
        bulk_mib: bulkMiB,
        bulk_direct_mbps: round(best('direct'), 0),
        bulk_door_http_mbps: round(best('door_http'), 0),
        bulk_door_https_mbps: round(best('door_https'), 0),
        ratio_bulk_door_https: round(best('door_https') / best('direct')),
      }),
    );
  } finally {
    for (const close of closers) await close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
