import { Wallet } from 'ethers';
import WebSocket from 'ws';
import { z } from 'zod';
import { request } from 'node:http';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { ApiServer, createProviderApi, InMemoryNonceLedger, ProviderMetrics, providerRoutes, TenantAuthenticator, wire } from '../../../src/api';
import { silentLogger } from '../../../src/log';
import { openLogs, send, signed, startApi, type ApiHarness } from '../../support/api-harness';
import { systemClock } from '../../../src/util/clock';

const tenant = Wallet.createRandom();
const stranger = Wallet.createRandom();

const aManifest = (overrides: Record<string, unknown> = {}) => ({
  image: 'busybox:1.36',
  command: ['sh', '-c', 'echo hi'],
  resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 },
  maxDurationSeconds: 600,
  ...overrides,
});

describe('provider API', () => {
  let h: ApiHarness;

  beforeAll(async () => {
    h = await startApi();
    h.service.addLease('7', tenant.address);
    h.service.pushLogs('7', 'one', 'two', { stream: 'stderr', time: new Date().toISOString(), line: 'three' });
    await h.service.setUsage('7', [
      { t0: 100n, t1: 110n, cpuMillis: 5_000n, memoryByteSeconds: 10n, gpuMillis: 0n, rxBytes: 1n, txBytes: 2n },
      { t0: 110n, t1: 120n, cpuMillis: 7_000n, memoryByteSeconds: 10n, gpuMillis: 0n, rxBytes: 1n, txBytes: 2n },
    ]);
  });

  afterAll(() => h.close());

  async function get(path: string, who = tenant) {
    return send(h.port, 'GET', path, undefined, await signed(who, 'GET', path));
  }

  it('answers liveness cheaply, without authentication', async () => {
    const reply = await send(h.port, 'GET', '/healthz');
    expect([reply.status, reply.body]).toEqual([200, { status: 'ok' }]);
  });

  it('serves the offer to anyone, in the wire shape', async () => {
    const reply = await send(h.port, 'GET', '/v1/offer');
    expect(reply.status).toBe(200);
    expect(wire.offerWire.safeParse(reply.body).success).toBe(true);
    expect(reply.body.provider).toBe(h.providerKey.address);
  });

  describe('POST /v1/quotes', () => {
    it('returns a signed quote for the signing tenant, amounts as decimal strings', async () => {
      const body = JSON.stringify(aManifest());
      const reply = await send(h.port, 'POST', '/v1/quotes', body, await signed(tenant, 'POST', '/v1/quotes', body));
      expect(reply.status).toBe(201);
      expect(reply.body.quote.tenant).toBe(tenant.address);
      expect(reply.body.quote.rates.perCpuSecond).toBe('2000');
      const decoded = wire.quoteResponseWire.parse(reply.body);
      expect(typeof decoded.quote.nonce).toBe('bigint');
    });

    it('refuses a manifest that asks for privileged mode, naming the field', async () => {
      const body = JSON.stringify(aManifest({ privileged: true }));
      const reply = await send(h.port, 'POST', '/v1/quotes', body, await signed(tenant, 'POST', '/v1/quotes', body));
      expect([reply.status, reply.body.error.code]).toEqual([400, 'MANIFEST_INVALID']);
      expect(reply.body.error.message).toMatch(/not allowed: privileged/);
    });

    it('refuses absurd resources naming resources.cpuMillis', async () => {
      const body = JSON.stringify(aManifest({ resources: { cpuMillis: 10 ** 12, memoryBytes: 64 * 2 ** 20 } }));
      const reply = await send(h.port, 'POST', '/v1/quotes', body, await signed(tenant, 'POST', '/v1/quotes', body));
      expect(reply.body.error).toMatchObject({ code: 'MANIFEST_INVALID', field: 'resources.cpuMillis' });
    });

    it('maps the service\'s refusals through the status table', async () => {
      const denied = JSON.stringify(aManifest({ image: 'evil/miner' }));
      const d = await send(h.port, 'POST', '/v1/quotes', denied, await signed(tenant, 'POST', '/v1/quotes', denied));
      expect([d.status, d.body.error.code]).toEqual([403, 'IMAGE_DENIED']);
      const greedy = JSON.stringify(aManifest({ resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20, gpus: { count: 8 } } }));
      const g = await send(h.port, 'POST', '/v1/quotes', greedy, await signed(tenant, 'POST', '/v1/quotes', greedy));
      expect([g.status, g.body.error.code]).toEqual([409, 'CAPACITY_EXHAUSTED']);
    });

    it('refuses an unsigned quote request', async () => {
      const reply = await send(h.port, 'POST', '/v1/quotes', JSON.stringify(aManifest()), { 'content-type': 'application/json' });
      expect([reply.status, reply.body.error.code]).toEqual([401, 'AUTH_MISSING']);
    });
  });

  describe('lease routes', () => {
    it('serve the lease to its tenant', async () => {
      const reply = await get('/v1/leases/7');
      expect(reply.status).toBe(200);
      expect(wire.leaseViewWire.parse(reply.body).state).toBe('running');
      expect(reply.body.lastCheckpoint.checkpoint.cumulativeAmount).toMatch(/^\d+$/);
    });

    it('refuse anyone else with AUTH_FORBIDDEN', async () => {
      for (const path of ['/v1/leases/7', '/v1/leases/7/usage']) {
        const reply = await get(path, stranger);
        expect([reply.status, reply.body.error.code]).toEqual([403, 'AUTH_FORBIDDEN']);
      }
    });

    it('answer LEASE_NOT_FOUND for an unknown lease and REQUEST_INVALID for a malformed id', async () => {
      expect((await get('/v1/leases/999')).body.error.code).toBe('LEASE_NOT_FOUND');
      const bad = await get('/v1/leases/abc');
      expect([bad.status, bad.body.error.code, bad.body.error.field]).toEqual([400, 'REQUEST_INVALID', 'id']);
    });

    it('serve usage with records, proofs and checkpoints', async () => {
      const reply = await get('/v1/leases/7/usage');
      const usage = wire.usageViewWire.parse(reply.body);
      expect(usage.records).toHaveLength(2);
      expect(usage.records[0]?.proof.length).toBe(1);
      expect(usage.checkpoints[0]?.checkpoint.cumulativeAmount).toBe(usage.records.reduce((s, r) => s + r.record.amount, 0n));
    });

    it('take a countersignature body {signature} and nothing else', async () => {
      const path = '/v1/leases/7/checkpoints/1/countersign';
      const extra = JSON.stringify({ signature: `0x${'1'.repeat(130)}`, also: 1 });
      const r1 = await send(h.port, 'POST', path, extra, await signed(tenant, 'POST', path, extra));
      expect([r1.status, r1.body.error.code]).toEqual([400, 'REQUEST_INVALID']);
      const wrong = JSON.stringify({ signature: `0x${'1'.repeat(130)}` });
      const r2 = await send(h.port, 'POST', path, wrong, await signed(tenant, 'POST', path, wrong));
      expect([r2.status, r2.body.error.field]).toEqual([400, 'signature']);
    });
  });

  describe('operator routes', () => {
    it('serve /v1/status on loopback', async () => {
      const reply = await send(h.port, 'GET', '/v1/status');
      expect(reply.status).toBe(200);
      expect(wire.daemonStatusWire.parse(reply.body).leases.running).toBe(1);
    });

    it('serve /v1/status to a peer on this host\'s own address, and refuse it to any other', async () => {
      const external = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4');
      if (!external) return; // no other interface on this machine: nothing to reach the API from
      // Listen on the external address itself, so the peer address is not loopback.
      const authenticator = new TenantAuthenticator({ chainId: 31337, maxSignatureAgeSeconds: 300, clock: systemClock, nonces: new InMemoryNonceLedger(systemClock) });
      const metrics = new ProviderMetrics({ processMetrics: false });
      const api = createProviderApi({ service: h.service, metrics, authenticator, maxBodyBytes: 1024, log: silentLogger() });
      // The same routes on a host that does not own the peer's address: a peer from elsewhere.
      const elsewhere = new ApiServer({ routes: providerRoutes({ service: h.service, metrics }), authenticator, maxBodyBytes: 1024, log: silentLogger(), ownAddresses: () => ({}) });
      const { port } = await api.listen(external.address, 0);
      const { port: elsewherePort } = await elsewhere.listen(external.address, 0);
      try {
        expect((await sendTo(external.address, port, '/v1/status')).status).toBe(200);
        expect((await sendTo(external.address, port, '/v1/operator/leases')).status).toBe(200);
        for (const path of ['/v1/status', '/v1/operator/leases', '/v1/operator/earnings', '/v1/operator/leases/7/logs']) {
          const reply = await sendTo(external.address, elsewherePort, path);
          expect([path, reply.status, reply.body.error.code]).toEqual([path, 403, 'OPERATOR_ONLY']);
        }
        // The one that spends: a withdraw from elsewhere is refused before anything is sent.
        const withdraw = await sendTo(external.address, elsewherePort, '/v1/operator/withdraw', 'POST');
        expect([withdraw.status, withdraw.body.error.code]).toEqual([403, 'OPERATOR_ONLY']);
        expect((await sendTo(external.address, elsewherePort, '/v1/offer')).status).toBe(200);
      } finally {
        await api.close();
        await elsewhere.close();
      }
    });

    it('render Prometheus text with the provider metrics', async () => {
      h.metrics.setLeases({ running: 2, settled: 5 });
      h.metrics.setEarnings({ claimed: 10n, finalised: 20n, withdrawn: 30n });
      h.metrics.setCapacity({ cpuMillis: 8000, memoryBytes: 2 ** 34, gpus: 2 }, { cpuMillis: 500, memoryBytes: 2 ** 26, gpus: 1 });
      h.metrics.claimFailed('TX_REVERTED');
      h.metrics.setMeteringLag(3.5);
      const reply = await send(h.port, 'GET', '/metrics');
      expect(reply.status).toBe(200);
      expect(reply.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      for (const line of [
        'provider_leases{state="running"} 2',
        'provider_leases{state="failed"} 0',
        'provider_earnings_token_base_units{kind="withdrawn"} 30',
        'provider_cpu_millis{kind="allocatable"} 8000',
        'provider_memory_bytes{kind="allocated"} 67108864',
        'provider_gpus{kind="allocated"} 1',
        'provider_claim_failures_total{reason="TX_REVERTED"} 1',
        'provider_metering_lag_seconds 3.5',
      ]) {
        expect(reply.text.split('\n')).toContain(line);
      }
      expect(reply.text).toMatch(/^# TYPE provider_process_cpu_seconds_total counter$/m);
      // Every sample line is `name{labels} value`.
      for (const line of reply.text.split('\n').filter((l) => l && !l.startsWith('#'))) {
        expect(line).toMatch(/^[a-z_:][a-z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+|NaN|[+-]Inf$/i);
      }
    });
  });

  it('answers a request target that is not a path, over HTTP and on upgrade, and keeps serving', async () => {
    for (const upgrade of [false, true]) {
      const head = await rawRequest(h.port, `GET http://[ HTTP/1.1\r\nhost: x\r\nconnection: ${upgrade ? 'upgrade\r\nupgrade: websocket' : 'close'}\r\n\r\n`);
      expect(head).toMatch(/^HTTP\/1\.1 400 /);
      expect(head).toContain('REQUEST_INVALID');
    }
    expect((await send(h.port, 'GET', '/healthz')).status).toBe(200);
  });

  describe('WS /v1/leases/:id/logs', () => {
    it('sends the last N lines, one JSON message each, then an end message', async () => {
      const path = '/v1/leases/7/logs?tail=2';
      const out = await openLogs(h.port, path, await signed(tenant, 'GET', path));
      expect(out.status).toBe(101);
      expect(out.messages).toEqual([
        { stream: 'stdout', time: expect.any(String), line: 'two' },
        { stream: 'stderr', time: expect.any(String), line: 'three' },
        { end: true, reason: 'end-of-log' },
      ]);
      expect(out.closeCode).toBe(1000);
    });

    it('follows new lines until the stream ends', async () => {
      h.service.addLease('8', tenant.address);
      h.service.pushLogs('8', 'first');
      const path = '/v1/leases/8/logs?follow=1';
      const pending = openLogs(h.port, path, await signed(tenant, 'GET', path), (messages) => {
        if (messages.length === 1) setTimeout(() => h.service.pushLogs('8', 'second', 'third'), 20);
        if (messages.length === 3) setTimeout(() => h.service.endLogs('8'), 20);
        return false;
      });
      const out = await pending;
      expect(out.messages.map((m) => m.line ?? m.reason)).toEqual(['first', 'second', 'third', 'end-of-log']);
    });

    it('aborts the service stream when the client goes away', async () => {
      h.service.addLease('9', tenant.address);
      h.service.pushLogs('9', 'only');
      const path = '/v1/leases/9/logs?follow=1';
      const before = h.service.logSignals.length;
      await openLogs(h.port, path, await signed(tenant, 'GET', path), (messages) => messages.length === 1);
      const signal = h.service.logSignals[before];
      await waitFor(() => signal?.aborted === true);
      expect(signal?.aborted).toBe(true);
    });

    it('refuses a bad signature, a stranger and a bad query with HTTP statuses before upgrading', async () => {
      const path = '/v1/leases/7/logs?tail=1';
      const badSig = await signed(tenant, 'GET', '/v1/leases/7/logs?tail=2');
      const b = await openLogs(h.port, path, badSig);
      expect([b.status, b.body.error.code]).toEqual([401, 'AUTH_BAD_SIGNATURE']);
      const s = await openLogs(h.port, path, await signed(stranger, 'GET', path));
      expect([s.status, s.body.error.code]).toEqual([403, 'AUTH_FORBIDDEN']);
      const q = '/v1/leases/7/logs?tail=-1';
      const bad = await openLogs(h.port, q, await signed(tenant, 'GET', q));
      expect([bad.status, bad.body.error.code]).toEqual([400, 'REQUEST_INVALID']);
      const unknown = '/v1/leases/7/logs?grep=x';
      const u = await openLogs(h.port, unknown, await signed(tenant, 'GET', unknown));
      expect([u.status, u.body.error.code]).toEqual([400, 'REQUEST_INVALID']);
      const missing = await openLogs(h.port, '/v1/leases/7/logs', {});
      expect([missing.status, missing.body.error.code]).toEqual([401, 'AUTH_MISSING']);
    });

    it('respects backpressure: a slow reader still gets every line, in order', async () => {
      const slow = await startApi({ highWaterMarkBytes: 4 * 1024 });
      try {
        slow.service.addLease('1', tenant.address);
        const lines = Array.from({ length: 2_000 }, (_, i) => `line ${i} ${'x'.repeat(100)}`);
        slow.service.pushLogs('1', ...lines);
        const path = '/v1/leases/1/logs';
        const out = await openLogs(slow.port, path, await signed(tenant, 'GET', path));
        expect(out.messages.slice(0, -1).map((m) => m.line)).toEqual(lines);
        expect(out.messages[out.messages.length - 1]).toEqual({ end: true, reason: 'end-of-log' });
      } finally {
        await slow.close();
      }
    });

    it('stops reading the service while a paused reader lets the send buffer fill', async () => {
      const slow = await startApi({ highWaterMarkBytes: 64 * 1024 });
      try {
        slow.service.addLease('1', tenant.address);
        const lines = Array.from({ length: 20_000 }, (_, i) => `${i} ${'y'.repeat(2_000)}`);
        slow.service.pushLogs('1', ...lines);
        const path = '/v1/leases/1/logs';
        const ws = new WebSocket(`ws://127.0.0.1:${slow.port}${path}`, { headers: await signed(tenant, 'GET', path) });
        let received = 0;
        const ended = new Promise<unknown>((resolve) =>
          ws.on('message', (data: Buffer) => {
            const message = JSON.parse(data.toString('utf8')) as { end?: boolean };
            if (message.end) resolve(message);
            else received += 1;
          }),
        );
        await new Promise((resolve) => ws.once('open', resolve));
        ws.pause();
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(slow.service.logsYielded).toBeLessThan(lines.length);
        ws.resume();
        await expect(ended).resolves.toEqual({ end: true, reason: 'end-of-log' });
        expect(received).toBe(lines.length);
        ws.close();
      } finally {
        await slow.close();
      }
    });

    it('sends a shutdown end message to followers when the server closes', async () => {
      const other = await startApi();
      other.service.addLease('1', tenant.address);
      other.service.pushLogs('1', 'a');
      const path = '/v1/leases/1/logs?follow=1';
      let closing: Promise<void> | undefined;
      const out = await openLogs(other.port, path, await signed(tenant, 'GET', path), (messages) => {
        if (messages.length === 1) closing = other.close();
        return false;
      });
      await closing;
      expect(out.messages[out.messages.length - 1]).toEqual({ end: true, reason: 'shutdown' });
      expect(z.array(wire.logMessageWire).safeParse(out.messages).success).toBe(true);
    });
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

function sendTo(host: string, port: number, path: string, method = 'GET'): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      if (out.includes('}')) socket.end();
    });
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
  });
}
