import { getAddress, keccak256, toUtf8Bytes, type Wallet } from 'ethers';
import type { SignedBenchmarks } from '../benchmark';
import type { CapacityReport, GpuModelInfo } from '../capacity';
import { outcomeOf, tokenAt, type ChainClient } from '../chain';
import type { ProviderConfig } from '../config';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import type { OutboxRepository } from '../store';

/** Where withdrawals go: the configured payout address, else the provider key's own. */
export function payoutAddressOf(config: Pick<ProviderConfig, 'settlement'>, provider: string): string {
  return getAddress(config.settlement.payoutAddress ?? provider);
}

/** How long start-up waits for the provider's registration transaction. */
const REGISTRATION_TIMEOUT_MS = 180_000;

/**
 * The on-chain metadata: what this provider sells and at what price (stable across restarts), the
 * GPU models tenants filter on, the signed GPU benchmark, and the SHA-256 pin of the API's
 * certificate (tenants refuse any other; a renewal re-registers).
 */
export function metadataOf(
  config: ProviderConfig,
  report: CapacityReport,
  extra: { tlsSha256?: string | undefined; gpuModels?: readonly GpuModelInfo[]; benchmarks?: SignedBenchmarks | null } = {},
): string {
  const { tlsSha256, gpuModels = [], benchmarks = null } = extra;
  const gpus = new Map<string, number>();
  for (const gpu of report.allocatable.gpus) {
    const name = gpu.profile ? `${gpu.model} ${gpu.profile}` : gpu.model;
    gpus.set(name, (gpus.get(name) ?? 0) + 1);
  }
  return JSON.stringify({
    region: config.region,
    cpuMillis: report.allocatable.cpuMillis,
    memoryBytes: report.allocatable.memoryBytes,
    gpus: Object.fromEntries(gpus),
    // What tenants filter on. Health is the count on sale when this was written (at start and on
    // reload): /v1/offer has it live.
    ...(gpuModels.length === 0 ? {} : { gpuModels: gpuModels.map((m) => ({
      model: m.model,
      profile: m.profile,
      memoryBytes: m.memoryBytes,
      driverVersion: m.driverVersion,
      cudaVersion: m.cudaVersion,
      pcie: m.pcie,
      total: m.total,
      healthy: m.healthy,
    })) }),
    pricing: {
      perLeaseSecond: config.pricing.perLeaseSecond,
      perCpuSecond: config.pricing.perCpuSecond,
      perGiBMemorySecond: config.pricing.perGiBMemorySecond,
      perGpuSecond: config.pricing.perGpuSecond,
      perGpuSecondByModel: config.pricing.perGpuSecondByModel,
      perGiBEgress: config.pricing.perGiBEgress,
      minimumPerLease: config.pricing.minimumPerLease,
    },
    // The signed summary as the offer serves it: anyone reading the chain can check it (verifyBenchmarks).
    ...(benchmarks ? { benchmarks } : {}),
    ...(tlsSha256 ? { tls: { sha256: tlsSha256 } } : {}),
  });
}

/**
 * Registers the provider (approving and posting the minimum bond) when it is not registered, or
 * updates its API URL and metadata when they changed. Waits for the transactions, saying so.
 */
export async function ensureRegistered(options: {
  chain: ChainClient;
  outbox: OutboxRepository;
  signer: Wallet;
  apiUrl: string;
  metadata: string;
  /** Receives every withdrawal (config settlement.payoutAddress; default the provider key's address). */
  payout: string;
  log: Logger;
  signal?: AbortSignal;
}): Promise<void> {
  const { chain, signer, apiUrl, metadata, log } = options;
  const market = chain.settings.marketplaceAddress;
  const info = (await chain.marketplace.read('getProvider', [signer.address])) as unknown as { status: bigint; apiUrl: string; metadata: string; payout: string };
  const status = Number(info.status);
  const wait = async (key: string, what: string): Promise<void> => {
    log.info({ key }, `waiting for the chain: ${what}`);
    const outcome = await chain.sender.waitFor(key, { signal: options.signal, timeoutMs: REGISTRATION_TIMEOUT_MS });
    if (outcome.state !== 'confirmed') {
      throw new ProviderError(outcome.code, `${what} failed: ${outcome.error}`, {
        fix: 'check that the provider key holds enough of the payment token for the bond and gas for the transaction',
      });
    }
  };
  if (status === 0) {
    const bond = await chain.marketplace.read('minBond', []);
    const tokenAddress = await chain.marketplace.read('token', []);
    const token = tokenAt(tokenAddress, chain.rpc);
    const allowance = await token.read('allowance', [signer.address, market]);
    const tag = keccak256(toUtf8Bytes(`${market}:${signer.address}`)).slice(2, 14);
    if (allowance < bond) {
      chain.sender.submit({ key: `approve-bond:${tag}`, to: tokenAddress, data: token.encode('approve', [market, bond]) });
      await wait(`approve-bond:${tag}`, 'approving the bond');
    }
    const key = `register:${tag}`;
    const existing = chain.sender.submit({ key, to: market, data: chain.marketplace.encode('registerProvider', [apiUrl, metadata, bond, options.payout]) });
    if (outcomeOf(existing)?.state === 'confirmed') return;
    await wait(key, `registering the provider with a bond of ${bond} base units`);
    log.info({ apiUrl, payout: options.payout }, 'provider registered on-chain');
    return;
  }
  if (status !== 1) {
    throw new ProviderError('TX_REJECTED', `this provider key is ${status === 2 ? 'unbonding' : 'slashed'} on the marketplace and cannot take leases`, {
      fix: 'use another provider key',
    });
  }
  if (getAddress(info.payout) !== getAddress(options.payout)) {
    // Only the payout address itself may move the payout (a stolen provider key cannot redirect
    // money), so the daemon cannot follow a changed config: it says so and pays the registered one.
    log.warn(
      { registered: info.payout, configured: options.payout },
      'the payout address on-chain is not the configured one; withdrawals pay the registered address. To change it, send setPayout(provider, newPayout) from the registered payout address',
    );
  }
  if (info.apiUrl !== apiUrl || info.metadata !== metadata) {
    // An update still in flight (sent before a crash, or by the last reload) lands first; then the
    // chain says whether another is needed. Updates are numbered, never named by content: the
    // same prices may be set again later (A → B → A → B), and a failed one must not block a retry.
    const earlier = options.outbox.openWithPrefix('update:');
    if (earlier) {
      await wait(earlier.key, 'an earlier update of the API URL and metadata').catch((err: unknown) => log.warn({ err: describeError(err) }, 'an earlier update failed'));
      const now = (await chain.marketplace.read('getProvider', [signer.address])) as unknown as { apiUrl: string; metadata: string };
      if (now.apiUrl === apiUrl && now.metadata === metadata) return;
    }
    const key = `update:${options.outbox.countWithPrefix('update:') + 1}`;
    chain.sender.submit({ key, to: market, data: chain.marketplace.encode('updateProvider', [apiUrl, metadata]) });
    await wait(key, 'updating the provider\'s API URL and metadata');
  }
}
