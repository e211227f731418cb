import { mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContractFactory, Interface, Wallet, getCreateAddress, type JsonRpcProvider } from 'ethers';
import { z } from 'zod';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import { marketplaceV2Abi, marketplaceV2Bytecode } from '../chain/artifacts/marketplace-v2';
import { mockTokenAbi, mockTokenBytecode } from '../chain/artifacts/mock-token';
import { DEVNET_MARKETPLACE_PARAMS } from '../chain/deploy';
import { EIP712_VERSION } from '../chain/protocol';
import { createRpcProvider } from '../chain/rpc';
import type { ChainSettings } from '../chain/chain-client';
import { startAnvil, type AnvilInstance } from './anvil';
import { DEV_ACCOUNT, devPrivateKey } from './dev-accounts';
import { ethAddressSchema } from '../util/eth-address';

export interface DevnetOptions {
  /** The provider's data dir; the devnet keeps its chain under `<dataDir>/devnet`. */
  dataDir: string;
  host: string;
  port: number;
  chainId: number;
  blockTimeSeconds: number;
  /** The marketplace's challenge window; default DEVNET_MARKETPLACE_PARAMS (3600 s). */
  challengeWindowSeconds?: number;
  log: Logger;
  signal?: AbortSignal;
  /** The anvil binary; default: the one @foundry-rs/anvil installed. */
  anvilBinary?: string;
}

export interface DevnetInfo {
  rpcUrl: string;
  wsUrl: string;
  chainId: number;
  marketplaceAddress: string;
  tokenAddress: string;
  /** anvil's well-known account #1: public knowledge, never use it on a real network. */
  providerKey: string;
  providerAddress: string;
  /** anvil's well-known account #2, funded for tests and `provider selftest`. */
  tenantKey: string;
  tenantAddress: string;
  /** True when this start deployed the contracts (clean data dir or lost state). */
  deployed: boolean;
}

/**
 * The chain settings the daemon uses on the devnet: one confirmation is enough on a chain that
 * cannot reorganise, and polling matches its block time.
 */
export function devnetChainSettings(info: DevnetInfo, blockTimeSeconds: number): ChainSettings {
  return {
    rpcUrl: info.rpcUrl,
    wsUrl: info.wsUrl,
    chainId: info.chainId,
    marketplaceAddress: info.marketplaceAddress,
    tokenAddress: info.tokenAddress,
    confirmations: blockTimeSeconds > 0 ? 1 : 0,
    pollIntervalMs: Math.max(250, blockTimeSeconds * 1000),
    startBlock: 0,
  };
}

/** Tokens (18 decimals) minted to the dev provider and the dev tenant at deployment. */
export const DEVNET_FUNDING = 1_000_000n * 10n ** 18n;

const deploymentSchema = z.object({
  chainId: z.number().int(),
  tokenAddress: ethAddressSchema,
  marketplaceAddress: ethAddressSchema,
  /** Absent in deployments made before the window was configurable: those have the default. */
  challengeWindowSeconds: z.number().int().optional(),
  /**
   * The marketplace's EIP-712 version: absent in deployments of the v1 contract, which the daemon
   * no longer speaks, so those are deployed afresh.
   */
  protocolVersion: z.literal(EIP712_VERSION).optional(),
  deployedAt: z.string(),
});
type Deployment = z.infer<typeof deploymentSchema>;

/**
 * The embedded default network: anvil as a child process with its state under the data dir,
 * the token and marketplace deployed once (and again only if the chain state was lost), the
 * dev provider and dev tenant funded. Nothing on it is worth anything, and its keys are public.
 */
export class Devnet {
  private anvil: AnvilInstance | undefined;
  private readonly dir: string;

  constructor(private readonly options: DevnetOptions) {
    this.dir = join(options.dataDir, 'devnet');
  }

  get statePath(): string {
    return join(this.dir, 'state.json');
  }

  get deploymentPath(): string {
    return join(this.dir, 'deployment.json');
  }

  private get challengeWindow(): number {
    return this.options.challengeWindowSeconds ?? Number(DEVNET_MARKETPLACE_PARAMS.challengeWindowSeconds);
  }

  private get pidPath(): string {
    return join(this.dir, 'anvil.pid');
  }

  async start(): Promise<DevnetInfo> {
    const { log } = this.options;
    log.warn(
      { devnet: true, chainId: this.options.chainId, dataDir: this.dir },
      'RUNNING ON A LOCAL DEVNET (anvil): not a real network, tokens are worthless, and the dev keys are public. Configure `network` to sell for real.',
    );
    await mkdir(this.dir, { recursive: true });
    this.killStaleAnvil();
    this.anvil = await startAnvil({
      host: this.options.host,
      port: this.options.port,
      chainId: this.options.chainId,
      blockTimeSeconds: this.options.blockTimeSeconds,
      statePath: this.statePath,
      stateIntervalSeconds: 5,
      binary: this.options.anvilBinary,
      signal: this.options.signal,
      log,
    });
    await writeFile(this.pidPath, `${this.anvil.pid}\n`);
    const rpc = createRpcProvider(this.anvil.rpcUrl, { chainId: this.options.chainId, pollingIntervalMs: 250 });
    try {
      let deployment = await this.existingDeployment(rpc);
      const deployed = deployment === undefined;
      if (!deployment) deployment = await this.deploy(rpc);
      const provider = new Wallet(devPrivateKey(DEV_ACCOUNT.provider));
      const tenant = new Wallet(devPrivateKey(DEV_ACCOUNT.tenant));
      log.info(
        {
          rpcUrl: this.anvil.rpcUrl,
          marketplace: deployment.marketplaceAddress,
          token: deployment.tokenAddress,
          provider: provider.address,
          tenant: tenant.address,
          deployed,
        },
        deployed ? 'devnet contracts deployed and dev accounts funded' : 'devnet resumed with its existing contracts',
      );
      return {
        rpcUrl: this.anvil.rpcUrl,
        wsUrl: this.anvil.wsUrl,
        chainId: this.options.chainId,
        marketplaceAddress: deployment.marketplaceAddress,
        tokenAddress: deployment.tokenAddress,
        providerKey: provider.privateKey,
        providerAddress: provider.address,
        tenantKey: tenant.privateKey,
        tenantAddress: tenant.address,
        deployed,
      };
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      rpc.destroy();
    }
  }

  /** Stops anvil, which writes its state so the next start resumes the same chain. */
  async stop(): Promise<void> {
    const anvil = this.anvil;
    this.anvil = undefined;
    if (!anvil) return;
    await anvil.stop();
    await rm(this.pidPath, { force: true });
  }

  /** An anvil left behind by a daemon killed with -9 still holds the port and the state file. */
  private killStaleAnvil(): void {
    let pid: number;
    try {
      pid = Number.parseInt(readFileSync(this.pidPath, 'utf8'), 10);
    } catch {
      return;
    }
    if (!Number.isInteger(pid) || pid <= 1) return;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes('anvil') && cmdline.includes(this.statePath)) {
        this.options.log.warn({ pid }, 'stopping an anvil left running by an earlier devnet');
        process.kill(pid, 'SIGKILL');
      }
    } catch {
      // not running (or not ours to inspect)
    }
  }

  private async existingDeployment(rpc: JsonRpcProvider): Promise<Deployment | undefined> {
    let deployment: Deployment;
    try {
      deployment = deploymentSchema.parse(JSON.parse(await readFile(this.deploymentPath, 'utf8')));
    } catch {
      return undefined;
    }
    if (deployment.chainId !== this.options.chainId) {
      this.options.log.warn({ recorded: deployment.chainId, configured: this.options.chainId }, 'devnet chain id changed; deploying afresh');
      return undefined;
    }
    if (deployment.protocolVersion !== EIP712_VERSION) {
      this.options.log.warn({ marketplace: deployment.marketplaceAddress }, 'devnet marketplace is the v1 contract; deploying the v2 one afresh');
      return undefined;
    }
    const recordedWindow = deployment.challengeWindowSeconds ?? Number(DEVNET_MARKETPLACE_PARAMS.challengeWindowSeconds);
    if (recordedWindow !== this.challengeWindow) {
      this.options.log.warn({ recorded: recordedWindow, configured: this.challengeWindow }, 'devnet challenge window changed; deploying afresh');
      return undefined;
    }
    const [marketCode, tokenCode] = await Promise.all([rpc.getCode(deployment.marketplaceAddress), rpc.getCode(deployment.tokenAddress)]);
    if (marketCode === '0x' || tokenCode === '0x') {
      this.options.log.warn({ statePath: this.statePath }, 'devnet state was lost (no contract code at the recorded addresses); deploying afresh');
      return undefined;
    }
    return deployment;
  }

  /** Sends every deployment transaction at once with explicit nonces, then waits: one block, not four. */
  private async deploy(rpc: JsonRpcProvider): Promise<Deployment> {
    const deployer = new Wallet(devPrivateKey(DEV_ACCOUNT.deployer), rpc);
    const fundees = [DEV_ACCOUNT.provider, DEV_ACCOUNT.tenant].map((i) => new Wallet(devPrivateKey(i)).address);
    try {
      const nonce = await rpc.getTransactionCount(deployer.address, 'latest');
      const tokenAddress = getCreateAddress({ from: deployer.address, nonce });
      const marketplaceAddress = getCreateAddress({ from: deployer.address, nonce: nonce + 1 });
      type FactoryAbi = ConstructorParameters<typeof ContractFactory>[0];
      const tokenDeploy = await new ContractFactory(mockTokenAbi as unknown as FactoryAbi, mockTokenBytecode).getDeployTransaction(
        'Devnet Compute Token',
        'DCT',
      );
      const marketDeploy = await new ContractFactory(marketplaceV2Abi as unknown as FactoryAbi, marketplaceV2Bytecode).getDeployTransaction(
        tokenAddress,
        DEVNET_MARKETPLACE_PARAMS.treasury,
        DEVNET_MARKETPLACE_PARAMS.minBond,
        BigInt(this.challengeWindow),
        DEVNET_MARKETPLACE_PARAMS.lateWindowSeconds,
        DEVNET_MARKETPLACE_PARAMS.unbondingDelaySeconds,
      );
      const token = new Interface(mockTokenAbi as unknown as ConstructorParameters<typeof Interface>[0]);
      const requests = [
        { data: tokenDeploy.data, gasLimit: 3_000_000n },
        { data: marketDeploy.data, gasLimit: 8_000_000n },
        ...fundees.map((to) => ({ to: tokenAddress, data: token.encodeFunctionData('mint', [to, DEVNET_FUNDING]), gasLimit: 200_000n })),
      ];
      const sent = [];
      for (const [i, request] of requests.entries()) sent.push(await deployer.sendTransaction({ ...request, nonce: nonce + i }));
      for (const tx of sent) {
        const receipt = await tx.wait(1, 60_000);
        if (receipt?.status !== 1) throw new Error(`deployment transaction ${tx.hash} failed`);
      }
      const deployment: Deployment = {
        chainId: this.options.chainId,
        tokenAddress,
        marketplaceAddress,
        challengeWindowSeconds: this.challengeWindow,
        protocolVersion: EIP712_VERSION,
        deployedAt: new Date().toISOString(),
      };
      const tmp = `${this.deploymentPath}.tmp`;
      await writeFile(tmp, `${JSON.stringify(deployment, null, 2)}\n`);
      await rename(tmp, this.deploymentPath);
      return deployment;
    } catch (err) {
      throw new ProviderError('DEVNET_DEPLOY_FAILED', `could not deploy the devnet contracts: ${describeError(err)}`, {
        cause: err,
        fix: `remove ${this.dir} to start the devnet from scratch`,
      });
    }
  }
}
