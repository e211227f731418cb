import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Contract, Wallet, type InterfaceAbi, type JsonRpcProvider } from 'ethers';
import { BURN_ADDRESS, createKeystore, createRpcProvider, deployMarketplace, deployMockToken, marketplaceDomain, recordAmount, type MeteredUsage, type UsageRecord } from '../../../src/chain';
import { marketplaceV2Abi } from '../../../src/chain/artifacts/marketplace-v2';
import { mockTokenAbi } from '../../../src/chain/artifacts/mock-token';
import { devPrivateKey, startAnvil, type AnvilInstance } from '../../../src/devnet';
import { TenantClient } from '../../../src/tenant';
import { CHAIN_ID, startApi, type ApiHarness } from '../../support/api-harness';
import { runCli, tempDir } from '../../support/cli-io';
import { FAKE_RATES } from '../../support/fake-provider-service';
import { recordsOf, signedUsageView } from '../../support/usage-view';

jest.setTimeout(60_000);

/**
 * `provider tenant usage --verify` against a provider API that serves what a dishonest meter
 * signs: the command refuses it, prints the dispute evidence, and exits 1; an honest view passes.
 * The chain is a real anvil with the marketplace; the provider's API is the real server over a
 * fake service, registered on-chain so the command finds it from the lease id alone.
 */
const TOKEN = 10n ** 18n;
const MIN_BOND = 100n * TOKEN;
/** A pin as the daemon registers it (tls.sha256); this test's API is plain HTTP on loopback, so it is only listed. */
const PIN = 'ab'.repeat(32);
const manifest = { image: 'busybox:1.36', command: ['echo', 'hi'], resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 }, maxDurationSeconds: 600 };

let anvil: AnvilInstance;
let rpc: JsonRpcProvider;
let provider: Wallet;
let tenant: Wallet;
let h: ApiHarness;
let client: TenantClient;
let marketAddress: string;
let configFile: string;
let keyFile: string;
let dir: string;

beforeAll(async () => {
  anvil = await startAnvil({ blockTimeSeconds: 0, chainId: CHAIN_ID });
  rpc = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId, pollingIntervalMs: 50 });
  const [deployer, p, t] = [0, 1, 2].map((i) => new Wallet(devPrivateKey(i), rpc)) as [Wallet, Wallet, Wallet];
  provider = p;
  tenant = t;
  const tokenAddress = await deployMockToken(deployer);
  marketAddress = await deployMarketplace(deployer, { tokenAddress, treasury: BURN_ADDRESS, minBond: MIN_BOND, challengeWindowSeconds: 3_600n, lateWindowSeconds: 86_400n, unbondingDelaySeconds: 86_400n });
  const token = new Contract(tokenAddress, mockTokenAbi as unknown as InterfaceAbi, deployer);
  const market = new Contract(marketAddress, marketplaceV2Abi as unknown as InterfaceAbi, deployer);
  for (const who of [provider, tenant]) await (await token.getFunction('mint')(who.address, 1_000n * TOKEN)).wait();
  h = await startApi({ providerKey: provider, marketplace: marketAddress });
  await (await (token.connect(provider) as Contract).getFunction('approve')(marketAddress, MIN_BOND)).wait();
  await (await (market.connect(provider) as Contract).getFunction('registerProvider')(h.url, JSON.stringify({ region: 'test-lab', tls: { sha256: PIN } }), MIN_BOND, provider.address)).wait();
  client = new TenantClient({ signer: tenant, apiUrl: h.url, chainId: CHAIN_ID, chain: rpc });
  dir = tempDir();
  configFile = join(dir, 'provider.yaml');
  writeFileSync(configFile, `dataDir: ${dir}\nnetwork:\n  rpcUrl: ${anvil.rpcUrl}\n  chainId: ${CHAIN_ID}\n  marketplaceAddress: "${marketAddress}"\n`);
  keyFile = join(dir, 'tenant.key');
  writeFileSync(keyFile, `${tenant.privateKey}\n`, { mode: 0o600 });
});

afterAll(async () => {
  await h?.close();
  rpc?.destroy();
  await anvil?.stop();
});

function measured(startedAt: bigint): MeteredUsage[] {
  return [[0, 10], [10, 20], [20, 30]].map(([from, to], i) => ({
    t0: startedAt + BigInt(from!),
    t1: startedAt + BigInt(to!),
    cpuMillis: 1_500n * BigInt(i + 1),
    memoryByteSeconds: 10n * 2n ** 20n,
    gpuMillis: 0n,
    rxBytes: 100n,
    txBytes: 2n ** 20n,
  }));
}

async function openedLease(): Promise<{ leaseId: bigint; startedAt: bigint }> {
  const opened = await client.open(await client.quote(manifest), 10n ** 12n);
  h.service.addLease(opened.leaseId.toString(), tenant.address);
  await rpc.send('evm_increaseTime', [40]);
  await rpc.send('evm_mine', []);
  return opened;
}

const tenantCli = (...args: string[]) => runCli(['--config', configFile, '--log-level', 'silent', 'tenant', ...args, '--key-file', keyFile]);

describe('provider tenant usage --verify', () => {
  it('verifies an honest provider\'s records, proofs and checkpoints, finding the provider from the lease id', async () => {
    const { leaseId, startedAt } = await openedLease();
    await h.service.setUsage(leaseId.toString(), measured(startedAt), [2, 3]);
    const run = await tenantCli('usage', leaseId.toString(), '--verify', '--json');
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ leaseId: leaseId.toString(), verified: true, records: 3, latestCheckpoint: 2 });
  });

  it('refuses a record whose amount does not follow from the rates, prints the dispute evidence, and exits 1', async () => {
    const { leaseId, startedAt } = await openedLease();
    const records: UsageRecord[] = recordsOf(leaseId, FAKE_RATES, measured(startedAt)).map((r, i) => (i === 1 ? { ...r, amount: r.amount + 1n } : r));
    const view = await signedUsageView(provider, marketplaceDomain(CHAIN_ID, marketAddress), leaseId, FAKE_RATES, records);
    h.service.leases.get(leaseId.toString())!.usage = view;
    expect(recordAmount(FAKE_RATES, records[1]!)).not.toBe(records[1]!.amount);

    const json = await tenantCli('usage', leaseId.toString(), '--verify', '--json');
    expect(json.code).toBe(1);
    const refused = JSON.parse(json.stdout) as { verified: boolean; fault: string; evidence: { kind: string; fault: string; record: { index: string } }; dispute: { call: string; to: string; data: string } };
    expect(refused).toMatchObject({ verified: false, fault: 'disputable', evidence: { kind: 'record', fault: 'AmountMismatch', record: { index: '1' } }, dispute: { call: 'AmountMismatch', to: marketAddress } });
    expect(refused.dispute.data).toMatch(/^0x[0-9a-f]+$/);

    const text = await tenantCli('usage', leaseId.toString(), '--verify');
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/^NOT verified: /);
    expect(text.stderr).toContain('"fault":"AmountMismatch"');
    expect(text.stderr).toContain(`provider dispute ${leaseId}`);
    expect(text.stderr).toContain('do not countersign');
  });

  it('lists the registered provider with its region and TLS pin from the metadata', async () => {
    const run = await tenantCli('providers', '--json');
    expect(run.code).toBe(0);
    const listed = JSON.parse(run.stdout) as { providers: { provider: string; region: string; tlsPin: string; offer: unknown }[] };
    expect(listed.providers).toEqual([expect.objectContaining({ provider: provider.address, region: 'test-lab', tlsPin: PIN })]);
  });

  it('signs with a key from an encrypted keystore, and refuses a wrong password with its code', async () => {
    const keystore = join(dir, 'tenant-keystore.json');
    await createKeystore(keystore, 'correct horse', { privateKey: tenant.privateKey, scryptN: 2 });
    const passwordFile = join(dir, 'password');
    writeFileSync(passwordFile, 'correct horse\n', { mode: 0o600 });
    const base = ['--config', configFile, '--log-level', 'silent', 'tenant', 'leases', '--json', '--keystore', keystore];
    const run = await runCli([...base, '--keystore-password-file', passwordFile]);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ tenant: tenant.address });
    expect((JSON.parse(run.stdout) as { leases: unknown[] }).leases.length).toBeGreaterThanOrEqual(2);
    writeFileSync(passwordFile, 'wrong\n');
    const wrong = await runCli([...base, '--keystore-password-file', passwordFile]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/password/i);
  });

  it('tells a tenant who deploys where no provider has registered yet what that means and what to check', async () => {
    const deployer = new Wallet(devPrivateKey(0), rpc);
    const tokenAddress = await deployMockToken(deployer);
    const empty = await deployMarketplace(deployer, { tokenAddress, treasury: BURN_ADDRESS, minBond: MIN_BOND, challengeWindowSeconds: 3_600n, lateWindowSeconds: 86_400n, unbondingDelaySeconds: 86_400n });
    const emptyConfig = join(dir, 'empty-market.yaml');
    writeFileSync(emptyConfig, `dataDir: ${dir}\nnetwork:\n  rpcUrl: ${anvil.rpcUrl}\n  chainId: ${CHAIN_ID}\n  marketplaceAddress: "${empty}"\n`);
    const manifestFile = join(dir, 'small.yaml');
    writeFileSync(manifestFile, 'image: busybox:1.36\ncommand: [echo, hi]\nresources:\n  cpuMillis: 100\n  memoryBytes: 16777216\nmaxDurationSeconds: 60\n');
    const run = await runCli(['--config', emptyConfig, '--log-level', 'silent', 'tenant', 'deploy', manifestFile, '--key-file', keyFile]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`no provider is registered on the marketplace ${empty}`);
    expect(run.stderr).toContain('once its `provider start` has registered it');
  });
});
