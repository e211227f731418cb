import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Wallet } from 'ethers';
import {
  capacityViewWire,
  createProviderApi,
  earningsHistoryWire,
  InMemoryNonceLedger,
  ProviderMetrics,
  recentErrorsWire,
  TenantAuthenticator,
  type ApiServer,
  type OperatorAccess,
} from '../../../src/api';
import { AllocationLedger, type CapacityReport } from '../../../src/capacity';
import { marketplaceDomain } from '../../../src/chain';
import { StoreOperatorHistory } from '../../../src/daemon/operator-history';
import { CONTENT_SECURITY_POLICY, DashboardAccess, dashboardRoutes } from '../../../src/dashboard';
import { silentLogger } from '../../../src/log';
import { openStore, type Store, type StoredCheckpoint, type StoredLease } from '../../../src/store';
import { manualClock, systemClock } from '../../../src/util/clock';
import { CHAIN_ID, send } from '../../support/api-harness';
import { FakeProviderService } from '../../support/fake-provider-service';
import { anAllocatable, anAllocatableGpu } from '../../unit/capacity/builders';

const STATIC = join(__dirname, '..', '..', '..', 'src', 'dashboard', 'static');
const PASSWORD = 'correct horse battery staple';

/** The page's files as the build lays them out, uPlot's replaced by stand-ins. */
function assetsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'provider-dashboard-'));
  cpSync(STATIC, dir, { recursive: true });
  writeFileSync(join(dir, 'uPlot.iife.min.js'), 'var uPlot = function () {};');
  writeFileSync(join(dir, 'uPlot.min.css'), '.uplot {}');
  return dir;
}

function aLease(leaseId: string, patch: Partial<StoredLease> = {}): StoredLease {
  return {
    leaseId, runtimeId: `pabc-${leaseId}`, quoteNonce: null, tenant: '0x0000000000000000000000000000000000000001', manifestHash: '0x00',
    deposit: 10n ** 18n, rates: { perSecond: 1n, perCpuSecond: 2n, perGpuSecond: 3n, perGiBEgress: 4n }, allocation: { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: 0n }, maxDuration: 60,
    openedAt: 100, state: 'settled', endReason: 'exited', exitCode: 0, detail: null, closedAt: null, containerId: null,
    startedAt: 100, endedAt: 160, imageDigest: null, timeline: null, resultDigest: null, logsSha256: null, updatedAt: 160,
    ...patch,
  };
}

function aCheckpoint(leaseId: string, seq: bigint, cumulativeAmount: bigint, createdAt: number, status: StoredCheckpoint['status']): StoredCheckpoint {
  return {
    leaseId: BigInt(leaseId), seq, usageRoot: `0x${'1'.repeat(64)}`, cumulativeAmount, periodEnd: BigInt(createdAt), resultDigest: `0x${'0'.repeat(64)}`,
    recordCount: 1n, final: false, providerSig: '0x', tenantSig: null, status, createdAt,
  };
}

interface Harness {
  api: ApiServer;
  port: number;
  store: Store;
  dir: string;
  close(): Promise<void>;
}

async function start(options: { dir?: string; operatorAccess?: OperatorAccess } = {}): Promise<Harness> {
  const providerKey = Wallet.createRandom();
  const marketplace = Wallet.createRandom().address;
  const store = openStore(':memory:');
  const clock = manualClock(1_000_000);
  const allocatable = anAllocatable({ gpus: [anAllocatableGpu({ gpuIndex: 0 }), anAllocatableGpu({ gpuIndex: 1 })] });
  const ledger = new AllocationLedger(allocatable, clock);
  // What the detector reported at start: nvidia-smi's readings of GPU 0 only.
  const device = { uuid: allocatable.gpus[0]!.gpuUuid, utilization: { gpuPercent: 87, memoryPercent: 40 }, memory: { usedBytes: 3 * 2 ** 30 } };
  const report = { detectedAt: '2026-12-03T00:00:00.000Z', allocatable, gpus: { ok: true, devices: [device] } } as unknown as CapacityReport;
  ledger.reserve({ holder: 'q-1', cpuMillis: 2000, memoryBytes: 2 ** 30, diskBytes: 0, gpus: { count: 1 }, expiresAt: 2_000_000 });
  const dir = options.dir ?? assetsDir();
  const api = createProviderApi({
    service: new FakeProviderService({ providerKey, domain: marketplaceDomain(CHAIN_ID, marketplace), chainId: CHAIN_ID, marketplace }),
    metrics: new ProviderMetrics(),
    authenticator: new TenantAuthenticator({ chainId: CHAIN_ID, maxSignatureAgeSeconds: 300, clock: systemClock, nonces: new InMemoryNonceLedger(systemClock) }),
    maxBodyBytes: 64 * 1024,
    log: silentLogger(),
    history: new StoreOperatorHistory({
      store,
      ledger,
      report,
      // The health monitor's verdict: GPU 1 off sale.
      gpuHealth: () => [
        { index: 0, uuid: allocatable.gpus[0]!.gpuUuid, model: 'm', status: 'healthy', reason: null, since: 0, backOnSaleAt: null, temperatureCelsius: 40, xidErrors: 0 },
        { index: 1, uuid: allocatable.gpus[1]!.gpuUuid, model: 'm', status: 'unhealthy', reason: 'xid: Xid 79', since: 1, backOnSaleAt: null, temperatureCelsius: 41, xidErrors: 1 },
      ],
    }),
    extraRoutes: dashboardRoutes({ assetsDir: dir, log: silentLogger() }),
    operatorAccess: options.operatorAccess ?? new DashboardAccess({}),
  });
  const { port } = await api.listen('127.0.0.1', 0);
  return {
    api,
    port,
    store,
    dir,
    close: async () => {
      await api.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('the dashboard routes (the real API server, its files, a real store)', () => {
  let h: Harness;
  afterEach(() => h?.close());

  it('serve the page with its security headers, and its files cached for good under their version', async () => {
    h = await start();
    const page = await send(h.port, 'GET', '/dashboard');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    expect(page.text).not.toContain('{{version}}');
    const version = /\/dashboard\/assets\/([0-9a-f]{16})\/app\.js/.exec(page.text)?.[1];
    expect(version).toBeDefined();
    const types: Record<string, string> = {
      'app.js': 'text/javascript; charset=utf-8',
      'style.css': 'text/css; charset=utf-8',
      'uPlot.iife.min.js': 'text/javascript; charset=utf-8',
      'uPlot.min.css': 'text/css; charset=utf-8',
    };
    for (const [name, type] of Object.entries(types)) {
      expect(page.text).toContain(`/dashboard/assets/${version}/${name}`);
      const file = await send(h.port, 'GET', `/dashboard/assets/${version}/${name}`);
      expect([name, file.status, file.headers['content-type'], file.headers['cache-control']]).toEqual([name, 200, type, 'private, max-age=31536000, immutable']);
    }
    const old = await send(h.port, 'GET', '/dashboard/assets/0000000000000000/app.js');
    expect([old.status, old.headers['cache-control']]).toEqual([200, 'no-cache']);
    const missing = await send(h.port, 'GET', `/dashboard/assets/${version}/..%2F..%2Fpackage.json`);
    expect([missing.status, missing.body.error.code]).toEqual([404, 'ROUTE_NOT_FOUND']);
    // The page holds no data and no secret: it reads the operator API like the CLI.
    expect(page.text).not.toMatch(/0x[0-9a-fA-F]{40}/);
  });

  it('refuse a request from this machine that names another host (DNS rebinding)', async () => {
    h = await start();
    for (const path of ['/dashboard', '/v1/status', '/v1/operator/earnings']) {
      const reply = await send(h.port, 'GET', path, undefined, { host: 'rebind.attacker.example:8420' });
      expect([path, reply.status, reply.body.error.code]).toEqual([path, 403, 'OPERATOR_ONLY']);
    }
    expect((await send(h.port, 'GET', '/v1/status', undefined, { host: 'localhost:8420' })).status).toBe(200);
  });

  it('answer DASHBOARD_UNAVAILABLE with the fix when the files were not built, and serve the API still', async () => {
    const dir = assetsDir();
    rmSync(join(dir, 'uPlot.iife.min.js'));
    h = await start({ dir });
    const reply = await send(h.port, 'GET', '/dashboard');
    expect([reply.status, reply.body.error.code]).toEqual([503, 'DASHBOARD_UNAVAILABLE']);
    expect(reply.body.error.fix).toContain('npm run build');
    expect((await send(h.port, 'GET', '/v1/status')).status).toBe(200);
  });

  it('ask a peer on the network for the password (basic auth challenge), and let it read but not withdraw', async () => {
    // The server's peer here is loopback; this door treats every request as another machine's.
    const access = new DashboardAccess({ password: PASSWORD });
    h = await start({ operatorAccess: { admit: (req, method) => access.admit(req, method, false) } });
    const challenged = await send(h.port, 'GET', '/dashboard');
    expect([challenged.status, challenged.body.error.code, challenged.headers['www-authenticate']]).toEqual([401, 'OPERATOR_AUTH_REQUIRED', 'Basic realm="provider", charset="UTF-8"']);
    const wrong = await send(h.port, 'GET', '/v1/status', undefined, { authorization: `Basic ${Buffer.from('me:guess').toString('base64')}` });
    expect(wrong.status).toBe(401);
    const authorization = `Basic ${Buffer.from(`me:${PASSWORD}`).toString('base64')}`;
    expect((await send(h.port, 'GET', '/dashboard', undefined, { authorization })).status).toBe(200);
    expect((await send(h.port, 'GET', '/v1/operator/leases', undefined, { authorization })).status).toBe(200);
    const withdraw = await send(h.port, 'POST', '/v1/operator/withdraw', '{}', { authorization, 'content-type': 'application/json' });
    expect([withdraw.status, withdraw.body.error.code]).toEqual([403, 'OPERATOR_ONLY']);
  });

  it('report capacity held and free, with each GPU, its holder and its health', async () => {
    h = await start();
    const reply = await send(h.port, 'GET', '/v1/operator/capacity');
    expect(reply.status).toBe(200);
    const view = capacityViewWire.parse(reply.body);
    expect(view.total).toEqual({ cpuMillis: 8000, memoryBytes: 32 * 2 ** 30, diskBytes: 500 * 2 ** 30, gpus: 2 });
    expect(view.allocated).toEqual({ cpuMillis: 2000, memoryBytes: 2 ** 30, diskBytes: 0, gpus: 1 });
    expect(view.free.gpus).toBe(1);
    expect(view.holders).toEqual({ quotes: 1, leases: 0 });
    expect(view.gpus.map((g) => g.heldBy)).toEqual([{ kind: 'quote', holder: 'q-1' }, null]);
    expect(view.gpus.map((g) => [g.utilizationPercent, g.memoryUsedBytes])).toEqual([[87, 3 * 2 ** 30], [null, null]]);
    expect(view.readAt).toBe('2026-12-03T00:00:00.000Z');
    expect(view.gpus.map((g) => g.health)).toEqual(['healthy', 'UNHEALTHY: xid: Xid 79']);
  });

  it('give earnings over time from the store: earned at each checkpoint, paid when its redeem was confirmed', async () => {
    h = await start();
    const { store } = h;
    store.leases.insert(aLease('1'), { fromState: 'quoted', toState: 'quoted', event: 'lease-opened', reason: null, at: 100 });
    store.checkpoints.insert(aCheckpoint('1', 1n, 300n, 110, 'final'));
    store.checkpoints.insert(aCheckpoint('1', 2n, 500n, 120, 'final'));
    const redeem = store.outbox.enqueue({ key: 'redeem:1:2', sender: '0x0000000000000000000000000000000000000002', chainId: CHAIN_ID, to: '0x00', data: '0x' }, 121_000);
    store.outbox.finish(redeem.id, { state: 'confirmed', txHash: '0x01', blockNumber: 9 }, 130_000);
    store.leases.insert(aLease('2', { state: 'running', endReason: null }), { fromState: 'quoted', toState: 'running', event: 'x', reason: null, at: 115 });
    store.checkpoints.insert(aCheckpoint('2', 1n, 40n, 125, 'signed'));
    const reply = await send(h.port, 'GET', '/v1/operator/earnings/history');
    expect(reply.status).toBe(200);
    expect(reply.body.points).toEqual([
      { at: 110, earned: '300', paid: '0' },
      { at: 120, earned: '500', paid: '0' },
      { at: 125, earned: '540', paid: '0' },
      // Both of lease 1's checkpoints were paid by the one redeem: the latest amount counts once.
      { at: 130, earned: '540', paid: '500' },
    ]);
    expect(earningsHistoryWire.parse(reply.body).points.at(-1)?.paid).toBe(500n);
  });

  it('list recent failures newest first, each with its code and what to do', async () => {
    h = await start();
    const { store } = h;
    const claim = store.outbox.enqueue({ key: 'claim:7:1', sender: '0x0000000000000000000000000000000000000002', chainId: CHAIN_ID, to: '0x00', data: '0x' }, 100_000);
    store.outbox.finish(claim.id, { state: 'failed', code: 'TX_REJECTED', error: 'would revert: late' }, 200_000);
    store.leases.insert(aLease('8'), { fromState: 'quoted', toState: 'quoted', event: 'lease-opened', reason: null, at: 290 });
    store.leases.update('8', { state: 'settled', endReason: 'pull-failed', detail: 'manifest unknown' }, { fromState: 'pulling', toState: 'settled', event: 'pull-failed', reason: 'manifest unknown', at: 300 });
    store.leases.insert(aLease('9'), { fromState: 'running', toState: 'settled', event: 'x', reason: null, at: 400 });
    const reply = await send(h.port, 'GET', '/v1/operator/errors');
    expect(reply.status).toBe(200);
    const { errors } = recentErrorsWire.parse(reply.body);
    expect(errors.map((e) => [e.at, e.source, e.code, e.leaseId])).toEqual([
      [300, 'lease', 'pull-failed', '8'],
      [200, 'transaction', 'TX_REJECTED', '7'],
    ]);
    expect(errors[0]!.message).toContain('manifest unknown');
    expect(errors[0]!.fix).toContain('registry');
    expect(errors[1]!.message).toContain('would revert: late');
    expect(errors[1]!.fix).toContain('gas');
  });
});
