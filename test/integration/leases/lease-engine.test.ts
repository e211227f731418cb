import { JsonRpcProvider } from 'ethers';
import { Daemon } from '../../../src/daemon';
import { createLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { execFileAsync } from '../../../src/util/exec';
import { ZERO_BYTES32, usageTree } from '../../../src/chain';
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

async function startDaemon(name: string): Promise<{ daemon: Daemon; tenant: ChainTenant }> {
  dataDir = tempDataDir(name);
  const config = await testConfig(dataDir);
  const log = createLogger({ level: (process.env.TEST_LOG_LEVEL as 'info' | undefined) ?? 'warn', format: 'json' });
  daemon = await Daemon.start({ config, log, env: {}, exec: execFileAsync, clock: systemClock, version: 'test' });
  rpc = new JsonRpcProvider(daemon.info.rpcUrl, daemon.info.chainId, { staticNetwork: true });
  return { daemon, tenant: new ChainTenant(rpc, daemon.info.marketplace, daemon.info.token!) };
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
      expect(record.seq).toBe(BigInt(i));
      if (i > 0) expect(record.t0).toBe(usage.records[i - 1]!.record.t1);
    });
    const final = usage.checkpoints.at(-1)!;
    expect(final.checkpoint.resultDigest).not.toBe(ZERO_BYTES32);
    expect(final.checkpoint.usageRoot).toBe(usageTree(usage.records.map((r) => r.record)).root);
    const total = usage.records.reduce((s, r) => s + r.record.amount, 0n);
    expect(final.checkpoint.cumulativeAmount).toBe(total);

    const onChain = (await tenant.market.getFunction('getLease')(leaseId)) as { paid: bigint; settled: boolean };
    expect(onChain.settled).toBe(true);
    expect(onChain.paid).toBe(total);
    // The rest of the deposit came back to the tenant.
    const balanceAfter = (await tenant.token.getFunction('balanceOf')(tenant.wallet.address)) as bigint;
    expect(balanceAfter - balanceBefore).toBe(deposit - total);
    // Claimed earnings are withdrawn.
    await until('earnings withdrawn', async () => ((await tenant.market.getFunction('earnings')(d.info.provider)) as bigint) === 0n, 30_000);
  });
});
