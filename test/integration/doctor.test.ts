import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Contract, JsonRpcProvider, NonceManager, Wallet } from 'ethers';
import { createKeystore, deployMarketplace, deployMockToken, DEVNET_MARKETPLACE_PARAMS } from '../../src/chain';
import { devPrivateKey, freePort, startAnvil, type AnvilInstance } from '../../src/devnet';
import type { CheckResult } from '../../src/doctor';
import { runCli, tempDir } from '../support/cli-io';

jest.setTimeout(60_000);

const FAKE_BIN = join(__dirname, '..', 'fixtures', 'bin');

interface Report {
  ok: boolean;
  checks: CheckResult[];
}

const byId = (report: Report) => Object.fromEntries(report.checks.map((c) => [c.id, c]));

async function doctor(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; report: Report; stderr: string }> {
  const run = await runCli(['--log-level', 'silent', ...args, 'doctor', '--json', '--gpu-test-image', 'provider-test/busybox:latest'], {
    env: { PATH: process.env.PATH, ...env },
  });
  return { code: run.code, report: JSON.parse(run.stdout) as Report, stderr: run.stderr };
}

describe('provider doctor', () => {
  let dataDir: string;
  let apiPort: number;

  beforeEach(async () => {
    dataDir = tempDir('provider-doctor-');
    apiPort = await freePort('127.0.0.1');
  });

  it('passes on this machine with the devnet, skipping what the devnet provides', async () => {
    const { code, report } = await doctor(['--data-dir', dataDir, '--set', `api.port=${apiPort}`]);
    const checks = byId(report);
    expect(code).toBe(0);
    expect(report.ok).toBe(true);
    expect(checks.docker?.status).toBe('pass');
    expect(checks['gpu-passthrough']).toMatchObject({ status: 'skip', detail: expect.stringMatching(/sells CPU only/) });
    expect(checks['chain-rpc']?.status).toBe('skip');
  });

  it('says which runtime leases run under, and warns with the fix when only runc is there', async () => {
    const info = JSON.parse((await runCli(['--log-level', 'silent', '--data-dir', dataDir, 'capacity', '--json'], { env: { PATH: process.env.PATH } })).stdout) as {
      docker: { runtimes: string[] };
    };
    const { report } = await doctor(['--data-dir', dataDir, '--set', `api.port=${apiPort}`]);
    if (info.docker.runtimes.includes('runsc')) {
      expect(byId(report).sandbox).toMatchObject({ status: 'pass', detail: expect.stringMatching(/^leases without GPUs run under runsc .*GPU leases run under runc/) });
    } else {
      expect(byId(report).sandbox).toMatchObject({ status: 'warn', detail: expect.stringMatching(/only runc is available/), fix: expect.stringMatching(/install.sh --with-gvisor/) });
    }
    const runc = await doctor(['--data-dir', dataDir, '--set', `api.port=${apiPort}`, '--set', 'runtime.sandbox=runc']);
    expect(byId(runc.report).sandbox).toMatchObject({ status: 'pass', detail: 'leases without GPUs run under runc (runtime.sandbox is runc)' });
  });

  it('fails with the fix when Docker is not reachable, in text too', async () => {
    const args = ['--data-dir', dataDir, '--set', `api.port=${apiPort}`, '--set', `docker.socketPath=${join(dataDir, 'no-docker.sock')}`];
    const { code, report } = await doctor(args);
    expect(code).toBe(1);
    expect(byId(report).docker).toMatchObject({ status: 'fail', fix: expect.stringMatching(/\S/) });
    const text = await runCli(['--log-level', 'silent', ...args, 'doctor'], { env: { PATH: process.env.PATH } });
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^FAIL {2}docker .*\n {10,}fix: /m);
  });

  it('fails GPU passthrough with the toolkit fix when GPUs exist but Docker has no NVIDIA runtime', async () => {
    const { code, report } = await doctor(['--data-dir', dataDir, '--set', `api.port=${apiPort}`], {
      PROVIDER_NVIDIA_SMI: join(FAKE_BIN, 'nvidia-smi'),
      FAKE_NVIDIA_SMI_FIXTURE: 'rtx4090-535',
    });
    expect(code).toBe(1);
    expect(byId(report)['gpu-passthrough']).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/no NVIDIA runtime/),
      fix: expect.stringMatching(/NVIDIA Container Toolkit/),
    });
  });

  it('fails the API port check when another program holds the port', async () => {
    // Another program: it accepts connections and drops them, answering nothing.
    const squatter: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(apiPort, '127.0.0.1', resolve));
    try {
      const { report } = await doctor(['--data-dir', dataDir, '--set', `api.port=${apiPort}`, '--set', 'api.host=127.0.0.1']);
      expect(byId(report)['api-port']).toMatchObject({ status: 'fail', detail: expect.stringMatching(/in use by another program/) });
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  });

  describe('on a real chain', () => {
    let anvil: AnvilInstance;
    let marketplace: string;
    let keystoreDir: string;
    let passwordFile: string;
    const providerKey = devPrivateKey(5);

    beforeAll(async () => {
      anvil = await startAnvil();
      const rpc = new JsonRpcProvider(anvil.rpcUrl, anvil.chainId, { staticNetwork: true });
      const deployer = new NonceManager(new Wallet(devPrivateKey(0), rpc));
      const token = await deployMockToken(deployer);
      marketplace = await deployMarketplace(deployer, { tokenAddress: token, ...DEVNET_MARKETPLACE_PARAMS });
      const mint = new Contract(token, ['function mint(address to, uint256 amount)'], deployer);
      await (await mint.getFunction('mint')(new Wallet(providerKey).address, DEVNET_MARKETPLACE_PARAMS.minBond)).wait();
      keystoreDir = tempDir('provider-doctor-key-');
      passwordFile = join(keystoreDir, 'password');
      writeFileSync(passwordFile, 'doctor password\n');
      await createKeystore(join(keystoreDir, 'keystore.json'), 'doctor password', { scryptN: 1024, privateKey: providerKey });
      rpc.destroy();
    });

    afterAll(async () => {
      await anvil?.stop();
    });

    function networkArgs(overrides: { chainId?: number; marketplace?: string } = {}): string[] {
      return [
        '--data-dir', dataDir,
        '--set', `api.port=${apiPort}`,
        '--set', `network.rpcUrl=${anvil.rpcUrl}`,
        '--set', `network.chainId=${overrides.chainId ?? anvil.chainId}`,
        '--set', `network.marketplaceAddress="${overrides.marketplace ?? marketplace}"`,
        '--set', `keystore.path=${join(keystoreDir, 'keystore.json')}`,
        '--set', `keystore.passwordFile=${passwordFile}`,
        // No SSDP or NAT-PMP onto this machine's own network from a test: reachability is the
        // home-network e2e's, in namespaces it creates.
        '--set', 'reachability.mode=off',
      ];
    }

    it('checks the RPC, chain id, contract, key, balance, registration and clock', async () => {
      const { code, report } = await doctor(networkArgs());
      const checks = byId(report);
      expect(checks['chain-rpc']?.status).toBe('pass');
      expect(checks['chain-id']).toMatchObject({ status: 'pass', detail: `chain id ${anvil.chainId}` });
      expect(checks.contract?.status).toBe('pass');
      expect(checks.key).toMatchObject({ status: 'pass', detail: expect.stringContaining(new Wallet(providerKey).address) });
      expect(checks.balance?.status).toBe('pass');
      expect(checks.registered).toMatchObject({ status: 'warn', fix: expect.stringMatching(/provider start/) });
      expect(checks.clock?.status).toBe('pass');
      expect(code).toBe(0);
    });

    it('fails on a wrong chain id, a missing contract and a wrong key password', async () => {
      writeFileSync(join(keystoreDir, 'wrong'), 'not the password\n');
      const args = [...networkArgs({ chainId: 1, marketplace: '0x00000000000000000000000000000000000000aa' })];
      args[args.length - 1] = `keystore.passwordFile=${join(keystoreDir, 'wrong')}`;
      const { code, report } = await doctor(args);
      const checks = byId(report);
      expect(code).toBe(1);
      expect(checks['chain-id']).toMatchObject({ status: 'fail', detail: `the RPC serves chain ${anvil.chainId}, the config says 1` });
      expect(checks.contract?.status).toBe('fail');
      expect(checks.key).toMatchObject({ status: 'fail', detail: expect.stringMatching(/wrong password/) });
      expect(checks.balance?.status).toBe('skip');
    });

    it('fails the RPC check with the fix when nothing answers', async () => {
      const dead = await freePort('127.0.0.1');
      const args = networkArgs();
      args[args.indexOf(`network.rpcUrl=${anvil.rpcUrl}`)] = `network.rpcUrl=http://127.0.0.1:${dead}`;
      const { code, report } = await doctor(args);
      expect(code).toBe(1);
      expect(byId(report)['chain-rpc']).toMatchObject({ status: 'fail', fix: expect.stringMatching(/network.rpcUrl/) });
    });
  });
});
