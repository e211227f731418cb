import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Contract, Wallet, type InterfaceAbi, type JsonRpcProvider, type TransactionReceipt } from 'ethers';
import { marketplaceV2Abi as marketplaceAbi } from '../../../src/chain/artifacts/marketplace-v2';
import { mockTokenAbi } from '../../../src/chain/artifacts/mock-token';
import { decodeMarketplaceLog, marketplaceAt, providerAccount, type LeaseTerms, type ProviderAccount } from '../../../src/chain';
import { configSchema, type ProviderConfig } from '../../../src/config';
import { devPrivateKey, freePort } from '../../../src/devnet';
import type { QuoteResponse } from '../../../src/api';
import { Firewall, type ManifestInput } from '../../../src/runtime';
import { silentLogger } from '../../../src/log';
import { execFileAsync } from '../../../src/util/exec';
export { until } from '../../support/until';

export const sh = promisify(execFile);
export const TEST_IMAGE = 'provider-test/busybox:latest';
export const TOKEN = 10n ** 18n;

export function tempDataDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `provider-${name}-`));
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

/** A daemon config for tests: devnet on a free port, a short challenge window, fast metering. */
export async function testConfig(dataDir: string, overrides: Record<string, unknown> = {}): Promise<ProviderConfig> {
  const [rpcPort, apiPort] = [await freePort(), await freePort()];
  return configSchema.parse({
    dataDir,
    log: { level: 'warn' },
    devnet: { port: rpcPort, blockTimeSeconds: 1, challengeWindowSeconds: 12 },
    api: { host: '127.0.0.1', port: apiPort },
    reserve: { cpuMillis: 0, memoryBytes: 0, diskBytes: 0 },
    metering: { sampleIntervalSeconds: 1 },
    settlement: { checkpointIntervalSeconds: 5, countersignGraceSeconds: 3, withdrawIntervalSeconds: 60 },
    ...overrides,
  });
}

export function aManifest(overrides: Partial<ManifestInput> = {}): ManifestInput {
  return {
    image: TEST_IMAGE,
    command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo tick $i; sleep 1; done'],
    resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 },
    maxDurationSeconds: 300,
    ...overrides,
  };
}

/** The devnet's dev tenant, acting on the chain directly (ethers). */
export class ChainTenant {
  readonly wallet: Wallet;
  readonly market: Contract;
  readonly token: Contract;
  /** Each lease's terms as LeaseOpened announced them: closeLease passes them back. */
  readonly terms = new Map<bigint, LeaseTerms>();

  constructor(rpc: JsonRpcProvider, marketplace: string, token: string, key = devPrivateKey(2)) {
    this.wallet = new Wallet(key, rpc);
    this.market = new Contract(marketplace, marketplaceAbi as unknown as InterfaceAbi, this.wallet);
    this.token = new Contract(token, mockTokenAbi as unknown as InterfaceAbi, this.wallet);
  }

  /** What a funded tenant does before asking for quotes: the provider refuses quotes to a tenant whose allowance cannot pay the minimum deposit. */
  async approveMarketplace(amount: bigint = 10n ** 24n): Promise<void> {
    await this.send(this.token, 'approve', this.market.target, amount);
  }

  async open(response: QuoteResponse, deposit: bigint): Promise<bigint> {
    const allowance = (await this.token.getFunction('allowance')(this.wallet.address, this.market.target)) as bigint;
    if (allowance < deposit) await this.approveMarketplace(deposit);
    const receipt = await this.send(this.market, 'openLease', response.quote, response.signature, deposit);
    const typed = marketplaceAt(this.market.target as string, null);
    for (const log of receipt.logs) {
      const event = decodeMarketplaceLog(typed, log);
      if (event?.name !== 'LeaseOpened') continue;
      this.terms.set(event.args.leaseId, event.args.terms);
      return event.args.leaseId;
    }
    throw new Error(`openLease ${receipt.hash} emitted no LeaseOpened`);
  }

  async close(leaseId: bigint): Promise<void> {
    await this.send(this.market, 'closeLease', leaseId, this.termsOf(leaseId));
  }

  /**
   * Sends with the tenant client's 30% gas margin over the estimate, as a real tenant does. An
   * estimate runs at the pending block's timestamp, and openLease's gas depends on time: it raises
   * the provider's busyUntil only when the new lease ends later. Estimated in the second the
   * previous lease opened, the raise is skipped; mined a block later, it is not, and an exact
   * limit then starves the token transfer (out of gas, the open reverts).
   */
  private async send(contract: Contract, name: string, ...args: unknown[]): Promise<TransactionReceipt> {
    const fn = contract.getFunction(name);
    const gasLimit = ((await fn.estimateGas(...args)) * 13n) / 10n;
    const receipt = (await (await fn(...args, { gasLimit })).wait()) as TransactionReceipt | null;
    if (!receipt) throw new Error(`${name}: no receipt`);
    return receipt;
  }

  termsOf(leaseId: bigint): LeaseTerms {
    const terms = this.terms.get(leaseId);
    if (!terms) throw new Error(`lease ${leaseId} was not opened by this tenant`);
    return terms;
  }

  /** The lease's end as LeaseClosed set it, or undefined while it is not closed. */
  async closedAt(leaseId: bigint): Promise<bigint | undefined> {
    const [log] = await this.market.queryFilter(this.market.filters.LeaseClosed!(leaseId));
    return log && 'args' in log ? (log.args.getValue('end') as bigint) : undefined;
  }

  /** What LeaseSettled paid the provider and refunded the tenant; V2 clears the lease's slot when it settles, so the event is the record. */
  async settlement(leaseId: bigint): Promise<{ paid: bigint; refund: bigint } | undefined> {
    const [log] = await this.market.queryFilter(this.market.filters.LeaseSettled!(leaseId));
    return log && 'args' in log ? { paid: log.args.getValue('paid') as bigint, refund: log.args.getValue('refund') as bigint } : undefined;
  }

  /** The provider's credited earnings and payout address. */
  account(provider: string): Promise<ProviderAccount> {
    return providerAccount(marketplaceAt(this.market.target as string, this.wallet.provider), provider);
  }
}

/** Removes every container, network and firewall chain of an instance (what a stopped or failed test left behind). */
export async function removeInstanceContainers(instanceId: string | undefined): Promise<void> {
  if (!instanceId) return;
  const rules = await sh('iptables', ['-S']).catch(() => ({ stdout: '' }));
  const leases = new Set([...rules.stdout.matchAll(new RegExp(`provider-lease:(${instanceId}-[0-9]+)`, 'g'))].map((m) => m[1] as string));
  const firewall = new Firewall(execFileAsync, silentLogger(), { instanceId });
  for (const lease of leases) await firewall.remove(lease).catch(() => undefined);
  const { stdout } = await sh('docker', ['ps', '-aq', '--filter', `name=provider-lease-${instanceId}-`]).catch(() => ({ stdout: '' }));
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await sh('docker', ['rm', '-f', ...ids]).catch(() => undefined);
  const nets = await sh('docker', ['network', 'ls', '-q', '--filter', `name=provider-lease-${instanceId}-`]).catch(() => ({ stdout: '' }));
  const netIds = nets.stdout.split('\n').filter(Boolean);
  if (netIds.length > 0) await sh('docker', ['network', 'rm', ...netIds]).catch(() => undefined);
}
