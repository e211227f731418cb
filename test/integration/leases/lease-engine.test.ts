import { JsonRpcProvider } from 'ethers';
import { configSchema, type ProviderConfig } from '../../../src/config';
import { sh } from './support';
import { Daemon } from '../../../src/daemon';
import { createLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { execFileAsync } from '../../../src/util/exec';
import { ZERO_BYTES32, createRpcProvider, usageTree } from '../../../src/chain';
import { ChainTenant, TOKEN, aManifest, removeDir, removeInstanceContainers, tempDataDir, testConfig, until } from './support';

jest.setTimeout(180_000);

let dataDir: string | undefined;
let daemon: Daemon | undefined;
let rpc: JsonRpcProvider | undefined;

afterEach(async () => {
  const instance = daemon?.info.instanceId;
  await daemon?.stop().catch(() => undefined);
  daemon = undefined;
  rpc?.destroy();
  rpc = undefined;
  await removeInstanceContainers(instance);
  removeDir(dataDir);
});

async function startDaemon(name: string, reuse?: ProviderConfig): Promise<{ daemon: Daemon; tenant: ChainTenant; config: ProviderConfig }> {
  if (!reuse) dataDir = tempDataDir(name);
  const config = reuse ?? (await testConfig(dataDir!));
  const log = createLogger({ level: (process.env.TEST_LOG_LEVEL as 'info' | undefined) ?? 'silent', format: 'json' });
  daemon = await Daemon.start({ config, log, env: {}, exec: execFileAsync, clock: systemClock, version: 'test' });
  rpc?.destroy();
  rpc = createRpcProvider(daemon.info.rpcUrl, { chainId: daemon.info.chainId });
  const tenant = new ChainTenant(rpc, daemon.info.marketplace, daemon.info.token!);
  await tenant.approveMarketplace();
  return { daemon, tenant, config };
}

describe('lease engine (in process: real Docker, real anvil)', () => {
  it('runs a busybox lease to completion, meters it, checkpoints it and is paid by a claim', async () => {
    const { daemon: d, tenant } = await startDaemon('engine');
    const response = await d.service.quote(tenant.wallet.address, aManifest() as never);
    expect(response.quote.provider).toBe(d.info.provider);
    const deposit = 1n * TOKEN;
    const leaseId = await tenant.open(response, deposit);
    const balanceBefore = (await tenant.token.getFunction('balanceOf')(tenant.wallet.address)) as bigint;

    await until('the lease runs', async () => (await d.service.lease(leaseId.toString(), tenant.wallet.address)).state === 'running', 30_000);
    const settled = await until(
      'the lease is settled',
      async () => {
        const view = await d.service.lease(leaseId.toString(), tenant.wallet.address);
        return view.state === 'settled' ? view : undefined;
      },
      90_000,
    );
    expect(settled.endReason).toBe('exited');

    const usage = await d.service.usage(leaseId.toString(), tenant.wallet.address);
    expect(usage.records.length).toBeGreaterThanOrEqual(3);
    usage.records.forEach(({ record }, i) => {
      expect(record.index).toBe(BigInt(i));
      if (i > 0) expect(record.t0).toBe(usage.records[i - 1]!.record.t1);
    });
    const final = usage.checkpoints.at(-1)!;
    expect(final.checkpoint.resultDigest).not.toBe(ZERO_BYTES32);
    expect(final.checkpoint.usageRoot).toBe(usageTree(usage.records.map((r) => r.record)).root);
    const total = usage.records.reduce((s, r) => s + r.record.amount, 0n);
    expect(final.checkpoint.cumulativeAmount).toBe(total);

    // V2 clears a settled lease's slot: LeaseSettled is the record of what it paid.
    const onChain = await tenant.settlement(leaseId);
    expect(onChain).toEqual({ paid: total, refund: deposit - total });
    // The rest of the deposit came back to the tenant.
    const balanceAfter = (await tenant.token.getFunction('balanceOf')(tenant.wallet.address)) as bigint;
    expect(balanceAfter - balanceBefore).toBe(deposit - total);
    // Credited earnings are withdrawn to the payout address (by default the operator key's).
    const account = await until('earnings withdrawn', async () => {
      const a = await tenant.account(d.info.provider);
      return a.earnings === 0n ? a : undefined;
    }, 30_000);
    expect(account.payout).toBe(d.info.provider);
  });

  it('stops the container of a lease the tenant closes on-chain within one follower poll, and still bills it', async () => {
    const { daemon: d, tenant } = await startDaemon('close');
    const response = await d.service.quote(tenant.wallet.address, aManifest({ command: ['sleep', '300'] }) as never);
    const leaseId = await tenant.open(response, TOKEN);
    await until('the lease runs', async () => (await d.service.lease(leaseId.toString(), tenant.wallet.address)).state === 'running', 30_000);
    await until('a usage record', async () => d.service.usage(leaseId.toString(), tenant.wallet.address).then(() => true), 5_000);
    await new Promise((r) => setTimeout(r, 2_000));
    await tenant.close(leaseId);
    const closeSentAt = Date.now();
    const container = `provider-lease-${d.info.instanceId}-${leaseId}`;
    await until(
      'the container stopped',
      async () => (await sh('docker', ['inspect', '-f', '{{.State.Running}}', container])).stdout.trim() === 'false',
      15_000,
      100,
    );
    const stoppedAfterMs = Date.now() - closeSentAt;
    // From the close's receipt: one confirmation block (1 s), one follower poll (1 s), the stop itself.
    expect(stoppedAfterMs).toBeLessThan(3_500);
    const view = await until('settled', async () => {
      const v = await d.service.lease(leaseId.toString(), tenant.wallet.address);
      return v.state === 'settled' ? v : undefined;
    }, 90_000);
    expect(view.endReason).toBe('tenant-closed');
    const paid = (await tenant.settlement(leaseId))?.paid;
    expect(paid).toBeGreaterThan(0n);
    const closedAt = (await tenant.closedAt(leaseId))!;
    const usage = await d.service.usage(leaseId.toString(), tenant.wallet.address);
    // Never billed beyond the chain's end of the lease.
    expect(usage.records.at(-1)!.record.t1 <= closedAt).toBe(true);
  });

  it('adopts a running lease after a restart and meters it on with no hole and no overlap; paid once', async () => {
    const first = await startDaemon('restart');
    const response = await first.daemon.service.quote(first.tenant.wallet.address, aManifest({ command: ['sh', '-c', 'sleep 9; echo done'] }) as never);
    const leaseId = await first.tenant.open(response, TOKEN);
    const tenantAddress = first.tenant.wallet.address;
    await until('the lease runs', async () => (await first.daemon.service.lease(leaseId.toString(), tenantAddress)).state === 'running', 30_000);
    await new Promise((r) => setTimeout(r, 2_500));
    await first.daemon.stop();
    daemon = undefined;
    await new Promise((r) => setTimeout(r, 2_000));
    const second = await startDaemon('restart', first.config);
    const view = await until('settled after the restart', async () => {
      const v = await second.daemon.service.lease(leaseId.toString(), tenantAddress);
      return v.state === 'settled' ? v : undefined;
    }, 90_000);
    expect(view.endReason).toBe('exited');
    const usage = await second.daemon.service.usage(leaseId.toString(), tenantAddress);
    usage.records.forEach(({ record }, i) => {
      expect(record.index).toBe(BigInt(i));
      if (i > 0) expect(record.t0).toBe(usage.records[i - 1]!.record.t1);
    });
    const total = usage.records.reduce((s, r) => s + r.record.amount, 0n);
    expect((await second.tenant.settlement(leaseId))?.paid).toBe(total);
  });

  it('ends a lease at its maxDuration and bills it only up to the chain\'s end of the lease', async () => {
    const { daemon: d, tenant } = await startDaemon('maxduration');
    const response = await d.service.quote(tenant.wallet.address, aManifest({ command: ['sleep', '300'], maxDurationSeconds: 6 }) as never);
    const leaseId = await tenant.open(response, TOKEN);
    const view = await until('settled', async () => {
      const v = await d.service.lease(leaseId.toString(), tenant.wallet.address);
      return v.state === 'settled' ? v : undefined;
    }, 90_000);
    expect(view.endReason).toBe('max-duration');
    const end = tenant.termsOf(leaseId).startedAt + response.quote.maxDuration;
    const usage = await d.service.usage(leaseId.toString(), tenant.wallet.address);
    expect(usage.records.at(-1)!.record.t1 <= end).toBe(true);
    expect((await tenant.settlement(leaseId))?.paid).toBe(usage.records.reduce((s, r) => s + r.record.amount, 0n));
  });

  it('ends a lease whose container vanished while the daemon was down, billed to the last sample', async () => {
    const first = await startDaemon('vanished');
    const tenantAddress = first.tenant.wallet.address;
    const response = await first.daemon.service.quote(tenantAddress, aManifest({ command: ['sleep', '300'] }) as never);
    const leaseId = await first.tenant.open(response, TOKEN);
    await until('the lease runs', async () => (await first.daemon.service.lease(leaseId.toString(), tenantAddress)).state === 'running', 30_000);
    await new Promise((r) => setTimeout(r, 3_000));
    const container = `provider-lease-${first.daemon.info.instanceId}-${leaseId}`;
    await first.daemon.stop();
    const downAt = Math.ceil(Date.now() / 1000);
    daemon = undefined;
    await sh('docker', ['rm', '-f', container]);
    const second = await startDaemon('vanished', first.config);
    const view = await until('settled', async () => {
      const v = await second.daemon.service.lease(leaseId.toString(), tenantAddress);
      return v.state === 'settled' ? v : undefined;
    }, 90_000);
    expect(view.endReason).toBe('container-vanished');
    const usage = await second.daemon.service.usage(leaseId.toString(), tenantAddress);
    const lastSample = usage.records.at(-1)!.record.t1;
    // Nothing billed past the last sample taken before the daemon went down.
    expect(Number(lastSample)).toBeLessThanOrEqual(downAt);
    expect(usage.checkpoints.at(-1)!.checkpoint.periodEnd).toBe(lastSample);
    expect((await second.tenant.settlement(leaseId))?.paid).toBe(usage.records.reduce((s, r) => s + r.record.amount, 0n));
  });

  it('holds a quote signed before a reload to the minimum deposit it was quoted under; new quotes get the new one', async () => {
    dataDir = tempDataDir('reload');
    const config = await testConfig(dataDir, { pricing: { minimumPerLease: '1000' } });
    const { daemon: d, tenant } = await startDaemon('reload', config);
    const manifest = aManifest({ command: ['sh', '-c', 'sleep 30'] }) as never;

    const before = await d.service.quote(tenant.wallet.address, manifest);
    const outcome = d.reload(configSchema.parse({ ...config, pricing: { ...config.pricing, minimumPerLease: (10n * TOKEN).toString() } }));
    expect(outcome.applied.map((c) => c.key)).toEqual(['pricing.minimumPerLease']);
    const after = await d.service.quote(tenant.wallet.address, manifest);

    const honoured = await tenant.open(before, TOKEN);
    const refused = await tenant.open(after, TOKEN);
    const state = (id: bigint) => d.service.lease(id.toString(), tenant.wallet.address).then((v) => v.state);
    await until('the new-terms lease is refused', async () => (await state(refused)) === 'rejected', 30_000);
    await until('the old-terms lease runs', async () => (await state(honoured)) === 'running', 30_000);
  });
});
