import { decodeMarketplaceLog, marketplaceAt } from '../../src/chain';
import { selftestReportSchema, type SelftestReport } from '../../src/selftest';
import { DaemonProcess, daemonForTests, leaseSettlement, type DevTenant } from './daemon-process';

jest.setTimeout(150_000);

const CPU_STEPS = ['cpu.quote', 'cpu.open', 'cpu.running', 'cpu.logs', 'cpu.exit', 'cpu.metering', 'cpu.checkpoint', 'cpu.payment'];

function report(stdout: string): SelftestReport {
  return selftestReportSchema.parse(JSON.parse(stdout));
}

describe('provider selftest (a real daemon process on the devnet, real Docker)', () => {
  let daemon: DaemonProcess;
  let tenant: DevTenant;
  daemonForTests('selftest', (d, t) => {
    daemon = d;
    tenant = t;
  });

  it('runs a CPU lease end to end as the dev tenant, skips the GPU lease, and the provider is really paid', async () => {
    const run = await daemon.cli(['selftest', '--json', '--image', 'provider-test/busybox']);
    expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = report(run.stdout);
    expect(result.passed).toBe(true);
    expect(result.steps.map((s) => [s.name, s.status])).toEqual([
      ['daemon', 'pass'],
      ['offer', 'pass'],
      ...CPU_STEPS.map((name) => [name, 'pass']),
      ['gpu', 'skip'],
    ]);
    expect(result.steps.at(-1)!.detail).toBe('this provider offers no GPUs');

    // What the report claims, checked on the chain and through the provider's own API.
    // V2 has no lease counter (a lease id is the provider's address and the quote's nonce): one LeaseOpened.
    const market = marketplaceAt(daemon.ready!.marketplace, tenant.rpc);
    const opened = (await tenant.rpc.getLogs({ address: market.address, fromBlock: 0 }))
      .map((log) => decodeMarketplaceLog(market, log))
      .filter((e) => e?.name === 'LeaseOpened');
    expect(opened).toHaveLength(1);
    const leaseId = opened[0]!.name === 'LeaseOpened' ? opened[0]!.args.leaseId : 0n;
    expect(result.steps.find((s) => s.name === 'cpu.open')!.detail).toContain(`lease ${leaseId} opened`);
    const view = await tenant.client.usage(leaseId);
    const final = view.checkpoints.at(-1)!;
    expect(final.tenantSignature).not.toBeNull();
    const chain = await tenant.client.leaseOnChain(leaseId);
    expect(chain.terms.tenant).toBe(tenant.wallet.address);
    // Paid as the lease holds it, or as LeaseSettled recorded it if the daemon settled it already (V2 clears a settled lease).
    const paid = chain.end === 0n ? (await leaseSettlement(tenant.rpc, market.address, leaseId))?.paid : chain.paid;
    expect(paid).toBeGreaterThan(0n);
    expect(paid).toBe(final.checkpoint.cumulativeAmount);
    // Metering saw the CPU burst.
    expect(view.records.reduce((sum, r) => sum + r.record.cpuMillis, 0n)).toBeGreaterThan(0n);
    // Nothing of the lease is left running.
    expect((await tenant.client.lease(leaseId)).container?.running ?? false).toBe(false);
    expect(result.ms).toBeLessThan(60_000);
  });

  it('fails with the "start it" fix and exit 1 when no daemon answers', async () => {
    const idle = await DaemonProcess.create('selftest-idle');
    try {
      const run = await idle.cli(['selftest'], 30_000);
      expect(run.code).toBe(1);
      // Before the offer, selftest asks the daemon (operator listener) which provider's pin to check.
      expect(run.stdout).toMatch(/^FAIL {2}daemon +\d+ ms {2}the daemon is not running: nothing answers at http:\/\/127\.0\.0\.1:\d+/m);
      expect(run.stdout).toMatch(/fix: start it: provider start \(nothing answers at https:\/\/127\.0\.0\.1:\d+/);
      expect(run.stdout).toMatch(/^SKIP {2}cpu\.quote +not run: daemon failed$/m);
      expect(run.stdout).toMatch(/selftest FAILED in \d+\.\d s\n$/);
    } finally {
      await idle.cleanup();
    }
  });
});
