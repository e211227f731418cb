import { request } from 'node:http';
import { Wallet } from 'ethers';
import { wire } from '../../../src/api';
import { send, signed, startApi, type ApiHarness } from '../../support/api-harness';
import { until } from '../../support/until';

const tenant = Wallet.createRandom();
const other = Wallet.createRandom();

describe('operator routes (the real API server over the fake service, on loopback)', () => {
  let h: ApiHarness;

  beforeEach(async () => {
    h = await startApi();
    h.service.addLease('7', tenant.address);
    h.service.addLease('8', other.address, { state: 'settled', endReason: 'exited' });
    h.service.pushLogs('7', 'one', { stream: 'stderr', time: new Date().toISOString(), line: 'two' });
    await h.service.setUsage('7', [{ t0: 100n, t1: 110n, cpuMillis: 5_000n, memoryByteSeconds: 10n, gpuMillis: 0n, rxBytes: 1n, txBytes: 2n }]);
  });

  afterEach(() => h.close());

  it('list every lease, whoever its tenant, without a signature', async () => {
    const reply = await send(h.port, 'GET', '/v1/operator/leases');
    expect(reply.status).toBe(200);
    const { leases } = wire.operatorLeasesWire.parse(reply.body);
    expect(leases.map((l) => [l.leaseId, l.tenant, l.state])).toEqual([
      ['7', tenant.address, 'running'],
      ['8', other.address, 'settled'],
    ]);
    // Amounts travel as decimal strings of base units.
    expect(reply.body.leases[0].earned).toBe(leases[0]!.earned.toString());
    expect(leases[0]!.earned).toBeGreaterThan(0n);
  });

  it('show one lease with its transitions and checkpoints', async () => {
    const reply = await send(h.port, 'GET', '/v1/operator/leases/7');
    expect(reply.status).toBe(200);
    const lease = wire.operatorLeaseDetailWire.parse(reply.body);
    expect(lease.transitions).toHaveLength(1);
    expect(lease.checkpoints.map((c) => c.seq)).toEqual([1]);
  });

  it('answer LEASE_NOT_FOUND for a lease that does not exist, and REQUEST_INVALID for a bad id', async () => {
    for (const path of ['/v1/operator/leases/99', '/v1/operator/leases/99/logs']) {
      const reply = await send(h.port, 'GET', path);
      expect([path, reply.status, reply.body.error.code]).toEqual([path, 404, 'LEASE_NOT_FOUND']);
    }
    const bad = await send(h.port, 'GET', '/v1/operator/leases/abc');
    expect([bad.status, bad.body.error.code, bad.body.error.field]).toEqual([400, 'REQUEST_INVALID', 'id']);
  });

  it('stream any lease\'s log as NDJSON, ending with an end-of-log line', async () => {
    const reply = await send(h.port, 'GET', '/v1/operator/leases/7/logs');
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = reply.text.trim().split('\n').map((l) => wire.logMessageWire.parse(JSON.parse(l)));
    expect(lines).toEqual([
      expect.objectContaining({ stream: 'stdout', line: 'one' }),
      expect.objectContaining({ stream: 'stderr', line: 'two' }),
      { end: true, reason: 'end-of-log' },
    ]);
    const tail = await send(h.port, 'GET', '/v1/operator/leases/7/logs?tail=1');
    expect(tail.text.trim().split('\n').map((l) => JSON.parse(l).line)).toEqual(['two', undefined]);
  });

  it('refuse bad log queries with the parameter named', async () => {
    for (const [query, field] of [['tail=-1', 'tail'], ['follow=maybe', 'follow'], ['tail=1&tail=2', 'tail'], ['evil=1', 'evil']] as const) {
      const reply = await send(h.port, 'GET', `/v1/operator/leases/7/logs?${query}`);
      expect([query, reply.status, reply.body.error.code, reply.body.error.field]).toEqual([query, 400, 'REQUEST_INVALID', field]);
    }
  });

  it('follow a log until the container ends, and abort the service\'s stream when the client goes away', async () => {
    const received: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: h.port, path: '/v1/operator/leases/7/logs?follow=1&tail=0' }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => received.push(chunk));
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    await until('the stream is open', () => h.service.logSignals.length > 0, 5_000, 20);
    h.service.pushLogs('7', 'three');
    await until('three arrives', () => received.join('').includes('three'), 5_000, 20);
    h.service.endLogs('7');
    await done;
    expect(received.join('').trim().split('\n').map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ line: 'three' }), { end: true, reason: 'end-of-log' }]);

    // A follower that disconnects: the service's stream is aborted, nothing is left running.
    h.service.leases.get('7')!.logsEnded = false;
    const req = request({ host: '127.0.0.1', port: h.port, path: '/v1/operator/leases/7/logs?follow=1' });
    req.on('error', () => undefined);
    req.end();
    await until('second stream open', () => h.service.logSignals.length > 1, 5_000, 20);
    req.destroy();
    await until('aborted', () => h.service.logSignals[1]!.aborted, 5_000, 20);
  });

  it('close a following log stream when the server shuts down, with a shutdown line', async () => {
    let text = '';
    const ended = new Promise<void>((resolve) => {
      request({ host: '127.0.0.1', port: h.port, path: '/v1/operator/leases/7/logs?follow=1&tail=0' }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', resolve);
        res.on('error', () => resolve());
      }).end();
    });
    await until('the stream is open', () => h.service.logSignals.length > 0, 5_000, 20);
    const started = Date.now();
    await h.close();
    await ended;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(text.trim().split('\n').map((l) => JSON.parse(l))).toEqual([{ end: true, reason: 'shutdown' }]);
    h = await startApi(); // afterEach closes one
  });

  it('report earnings with amounts as decimal strings', async () => {
    h.service.withdrawable = 1_500_000_000_000_000_000n;
    const reply = await send(h.port, 'GET', '/v1/operator/earnings');
    expect(reply.status).toBe(200);
    expect(reply.body.withdrawable).toBe('1500000000000000000');
    expect(wire.earningsWire.parse(reply.body).leases.map((l) => l.leaseId)).toEqual(['7', '8']);
  });

  it('withdraw: the amount and transaction once, then a clear nothing-to-withdraw', async () => {
    h.service.withdrawable = 42n;
    const first = await send(h.port, 'POST', '/v1/operator/withdraw', JSON.stringify({ waitSeconds: 5 }), { 'content-type': 'application/json' });
    expect([first.status, first.body.outcome, first.body.amount]).toEqual([200, 'confirmed', '42']);
    expect(h.service.withdrawWaits).toEqual([5_000]);
    const again = await send(h.port, 'POST', '/v1/operator/withdraw');
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ outcome: 'nothing', key: null, amount: '0', txHash: null, error: null });
    // Default wait when the body is empty.
    expect(h.service.withdrawWaits[1]).toBe(60_000);
  });

  it('refuse a withdraw body it does not know, and a GET on the withdraw route', async () => {
    for (const body of ['{"waitSeconds":-1}', '{"amount":"1"}', '{"waitSeconds":100000}', 'not json']) {
      const reply = await send(h.port, 'POST', '/v1/operator/withdraw', body, { 'content-type': 'application/json' });
      expect([body, reply.status, reply.body.error.code]).toEqual([body, 400, 'REQUEST_INVALID']);
    }
    expect(h.service.withdrawWaits).toEqual([]);
    const get = await send(h.port, 'GET', '/v1/operator/withdraw');
    expect([get.status, get.body.error.code]).toEqual([405, 'METHOD_NOT_ALLOWED']);
  });

  it('do not need a tenant signature, and do not let one stand in for the machine itself', async () => {
    // A signed tenant request is still answered by who the peer is, not who signed.
    const headers = await signed(tenant, 'GET', '/v1/operator/leases');
    expect((await send(h.port, 'GET', '/v1/operator/leases', undefined, headers)).status).toBe(200);
  });
});
