import { join } from 'node:path';
import { Contract, JsonRpcProvider, Wallet, type InterfaceAbi } from 'ethers';
import { BURN_ADDRESS, createKeystore, createRpcProvider, deployMarketplace, deployMockToken, marketplaceAt } from '../../src/chain';
import { mockTokenAbi } from '../../src/chain/artifacts/mock-token';
import { devPrivateKey, startAnvil, type AnvilInstance } from '../../src/devnet';
import { TenantClient } from '../../src/tenant';
import { DaemonProcess, leaseSettlement, until } from './daemon-process';

jest.setTimeout(240_000);

const TOKEN = 10n ** 18n;
let anvil: AnvilInstance | undefined;
let daemon: DaemonProcess | undefined;
let rpc: JsonRpcProvider | undefined;

afterAll(async () => {
  await daemon?.cleanup();
  rpc?.destroy();
  await anvil?.stop();
});

/**
 * A chain that outlives the daemon (an external anvil, as a real network would), a keystore for
 * the provider key, and the daemon killed with -9 in the middle of a lease.
 */
describe('provider start after kill -9', () => {
  it('adopts the running lease, finishes it, and is paid exactly once', async () => {
    anvil = await startAnvil({ blockTimeSeconds: 1 });
    rpc = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId, pollingIntervalMs: 250 });
    const deployer = new Wallet(devPrivateKey(0), rpc);
    const tokenAddress = await deployMockToken(deployer);
    const marketplace = await deployMarketplace(deployer, {
      tokenAddress,
      treasury: BURN_ADDRESS,
      minBond: 100n * TOKEN,
      challengeWindowSeconds: 20n,
      lateWindowSeconds: 86_400n,
      unbondingDelaySeconds: 86_400n,
    });
    const token = new Contract(tokenAddress, mockTokenAbi as unknown as InterfaceAbi, deployer);
    const provider = new Wallet(devPrivateKey(5));
    const tenantWallet = new Wallet(devPrivateKey(6), rpc);
    for (const who of [provider.address, tenantWallet.address]) await (await token.getFunction('mint')(who, 1_000_000n * TOKEN)).wait();

    daemon = await DaemonProcess.create(
      'kill9',
      {
        network: { rpcUrl: anvil.rpcUrl, chainId: anvil.chainId, marketplaceAddress: marketplace, tokenAddress, confirmations: 1, pollIntervalMs: 1000 },
        keystore: { passwordEnv: 'E2E_KEYSTORE_PASSWORD' },
      },
      { E2E_KEYSTORE_PASSWORD: 'e2e-password' },
    );
    await createKeystore(join(daemon.dataDir, 'keystore.json'), 'e2e-password', { privateKey: provider.privateKey, scryptN: 1024 });
    const ready = await daemon.start();
    expect(ready.provider).toBe(provider.address);
    expect(ready.devnet).toBe(false);

    const client = new TenantClient({ signer: tenantWallet, apiUrl: ready.apiUrl, chainId: anvil.chainId, chain: rpc, marketplace, provider: ready.provider });
    const quote = await client.quote({
      image: 'provider-test/busybox:latest',
      command: ['sh', '-c', 'for i in $(seq 1 14); do echo tick $i; sleep 1; done'],
      resources: { cpuMillis: 300, memoryBytes: 32 * 2 ** 20 },
      maxDurationSeconds: 300,
    });
    const { leaseId } = await client.open(quote, TOKEN);
    await until('running', async () => (await client.lease(leaseId)).state === 'running', 30_000);
    await new Promise((r) => setTimeout(r, 4_000));

    await daemon.kill9();
    await new Promise((r) => setTimeout(r, 3_000));
    await daemon.start();

    const ended = await until('settled after the restart', async () => {
      const view = await client.lease(leaseId);
      return view.state === 'settled' ? view : undefined;
    }, 150_000, 500);
    expect(ended.endReason).toBe('exited');

    // The tenant checks the timeline: contiguous (no hole, no overlap), priced, proven.
    const usage = await client.usage(leaseId);
    const verified = await client.verifyUsage(usage, leaseId);
    // Settled: V2 clears the lease's slot, LeaseSettled records what it paid.
    const settlement = await until('LeaseSettled', () => leaseSettlement(rpc!, marketplace, leaseId), 30_000, 500);
    expect(settlement.paid).toBe(verified.total);
    // Paid exactly once: V2 claims a running lease's usage at half the challenge window, so a lease
    // may see several claims, each for more records than the last (never one checkpoint twice); what
    // is credited (redeemed, or finalised claims) adds up to the total once, not once per claim.
    const market = marketplaceAt(marketplace, rpc);
    const events = (await rpc.getLogs({ address: marketplace, fromBlock: 0, toBlock: 'latest' }))
      .map((log) => market.parseLog(log))
      .filter((e) => e !== null && e.args.getValue('leaseId') === leaseId);
    const claims = events.filter((e) => e!.name === 'ClaimSubmitted');
    const amounts = claims.map((e) => e!.args.getValue('cumulativeAmount') as bigint);
    expect(new Set(claims.map((e) => e!.args.getValue('checkpoint') as string)).size).toBe(claims.length);
    expect(amounts).toEqual([...amounts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(amounts.at(-1) ?? verified.total).toBe(verified.total);
    const credited = events.filter((e) => ['ClaimFinalized', 'CheckpointRedeemed'].includes(e!.name)).reduce((sum, e) => sum + (e!.args.getValue('credited') as bigint), 0n);
    expect(credited).toBe(verified.total);
    expect(await daemon.stop()).toBe(0);
  });
});
