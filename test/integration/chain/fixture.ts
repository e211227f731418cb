import { Contract, Interface, JsonRpcProvider, Wallet, id, type InterfaceAbi, type TransactionReceipt } from 'ethers';
import { createRpcProvider } from '../../../src/chain/rpc';
import { startAnvil, type AnvilInstance } from '../../../src/devnet/anvil';
import { devPrivateKey } from '../../../src/devnet/dev-accounts';
import { deployMockToken } from '../../../src/chain/deploy';
import { deployLegacyMarketplace } from '../../../test/fixtures/legacy-protocol';
import { legacyMarketplaceAbi } from '../../../test/fixtures/contracts/legacy-marketplace';
import { ZERO_BYTES32, type Rates } from '../../../src/chain';
import { mockTokenAbi } from '../../../src/chain/artifacts/mock-token';
import {
  legacyDomain,
  signLegacyCheckpoint,
  signLegacyQuote,
  type LegacyCheckpoint,
  type LegacyQuote,
} from '../../../test/fixtures/legacy-protocol';

export const TOKEN = 10n ** 18n;
export const MIN_BOND = 100n * TOKEN;
export const CHALLENGE_WINDOW = 3_600n;
export const UNBONDING_DELAY = 7n * 86_400n;

export interface Fixture {
  anvil: AnvilInstance;
  rpc: JsonRpcProvider;
  chainId: bigint;
  deployer: Wallet;
  provider: Wallet;
  tenant: Wallet;
  other: Wallet;
  otherProvider: Wallet;
  token: Contract;
  market: Contract;
  domain: ReturnType<typeof legacyDomain>;
}

export const RATES: Rates = { perSecond: 1_000n, perCpuSecond: 2_000n, perGpuSecond: 50_000n, perGiBEgress: 1_000_000n };
export const MAX_RATE = 100_000n;

/** Starts anvil (automine) and deploys a token and marketplace with funded, approved actors. */
export async function startFixture(options: { tokenAbi?: InterfaceAbi; tokenAddress?: string } = {}): Promise<Fixture> {
  const anvil = await startAnvil({ blockTimeSeconds: 0 });
  const rpc = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId, pollingIntervalMs: 50 });
  const [deployer, provider, tenant, other, otherProvider] = [0, 1, 2, 3, 4].map((i) => new Wallet(devPrivateKey(i), rpc)) as [
    Wallet,
    Wallet,
    Wallet,
    Wallet,
    Wallet,
  ];
  const tokenAddress = await deployMockToken(deployer);
  const marketAddress = await deployLegacyMarketplace(deployer, {
    tokenAddress,
    minBond: MIN_BOND,
    challengeWindowSeconds: CHALLENGE_WINDOW,
    unbondingDelaySeconds: UNBONDING_DELAY,
  });
  const token = new Contract(tokenAddress, mockTokenAbi as unknown as InterfaceAbi, deployer);
  const market = new Contract(marketAddress, legacyMarketplaceAbi as unknown as InterfaceAbi, deployer);
  for (const who of [provider, tenant, other, otherProvider]) {
    await (await token.getFunction('mint')(who.address, 1_000_000n * TOKEN)).wait();
    await (await (token.connect(who) as Contract).getFunction('approve')(marketAddress, 2n ** 255n)).wait();
  }
  const chainId = (await rpc.getNetwork()).chainId;
  return {
    anvil,
    rpc,
    chainId,
    deployer,
    provider,
    tenant,
    other,
    otherProvider,
    token,
    market,
    domain: legacyDomain(chainId, marketAddress),
  };
}

export async function stopFixture(fx: Fixture | undefined): Promise<void> {
  if (!fx) return;
  fx.rpc.destroy();
  await fx.anvil.stop();
}

export function as(fx: Fixture, who: Wallet): Contract {
  return fx.market.connect(who) as Contract;
}

/**
 * Sends a transaction with a gas margin and polls for its receipt.
 * - The margin: an estimate runs at the pending block's timestamp, and a contract whose gas depends
 *   on time (MarketplaceV2's openLease raises the provider's busyUntil only when it grows) can need
 *   more by the time its block is mined: an exact estimate then runs out of gas. The tenant client
 *   adds the same 30%.
 * - The polling: ethers' tx.wait() checks once, then waits for the next block; on an automining
 *   anvil under load the first check can come too early, and no next block ever comes.
 */
export async function send(contract: Contract, name: string, ...args: unknown[]): Promise<TransactionReceipt> {
  const fn = contract.getFunction(name);
  const hasOverrides = args.length > fn.fragment.inputs.length;
  const callArgs = hasOverrides ? args : [...args, { gasLimit: ((await fn.estimateGas(...args)) * 13n) / 10n }];
  const tx = (await fn(...callArgs)) as { hash: string };
  const provider = contract.runner?.provider;
  if (!provider) throw new Error(`${name}: the contract has no provider`);
  for (let attempt = 0; attempt < 3_000; attempt += 1) {
    const receipt = await provider.getTransactionReceipt(tx.hash);
    if (receipt) {
      if (receipt.status !== 1) throw new Error(`${name}: reverted in block ${receipt.blockNumber}`);
      return receipt;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${name}: no receipt for ${tx.hash}`);
}

/** Resolves with the custom error's name the call reverted with. */
const marketInterface = new Interface(legacyMarketplaceAbi as unknown as InterfaceAbi);

export async function revertName(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    const e = err as { revert?: { name?: string }; data?: string };
    if (e.revert?.name) return e.revert.name;
    // A signer's estimateGas does not know the ABI, so the error data is decoded here.
    const parsed = e.data ? marketInterface.parseError(e.data) : null;
    if (parsed) return parsed.name;
    throw err;
  }
  throw new Error('expected a revert, the call succeeded');
}

/** Mines a block first, so the time anvil was told to skip is in the answer. */
export async function latestTimestamp(fx: Fixture): Promise<bigint> {
  await fx.rpc.send('evm_mine', []);
  const block = await fx.rpc.getBlock('latest');
  return BigInt(block!.timestamp);
}

export async function advance(fx: Fixture, seconds: bigint): Promise<void> {
  await fx.rpc.send('evm_increaseTime', [Number(seconds)]);
  await fx.rpc.send('evm_mine', []);
}

let nonceCounter = 1n;

export async function aQuote(fx: Fixture, overrides: Partial<LegacyQuote> = {}): Promise<LegacyQuote> {
  return {
    provider: fx.provider.address,
    tenant: fx.tenant.address,
    manifestHash: id('manifest'),
    rates: RATES,
    maxRatePerSecond: MAX_RATE,
    maxDuration: 86_400n,
    expiresAt: (await latestTimestamp(fx)) + 300n,
    nonce: nonceCounter++,
    ...overrides,
  };
}

export async function registerProvider(fx: Fixture, who: Wallet = fx.provider): Promise<void> {
  await send(as(fx, who), 'registerProvider', 'https://provider.example', '{"region":"test"}', MIN_BOND);
}

/** Opens a lease from a fresh quote and returns its id. */

export async function openLease(
  fx: Fixture,
  overrides: Partial<LegacyQuote> = {},
  deposit = 10_000_000n,
  signer: Wallet = fx.provider,
): Promise<bigint> {
  const quote = await aQuote(fx, overrides);
  const sig = await signLegacyQuote(signer, fx.domain, quote);
  const receipt = await send(as(fx, fx.tenant), 'openLease', quote, sig, deposit);
  const opened = receipt.logs.map((log) => fx.market.interface.parseLog(log)).find((e) => e?.name === 'LeaseOpened');
  return opened!.args.getValue('leaseId') as bigint;
}

export function aCheckpoint(leaseId: bigint, overrides: Partial<LegacyCheckpoint> = {}): LegacyCheckpoint {
  return {
    leaseId,
    seq: 1n,
    usageRoot: id('root-1'),
    cumulativeAmount: 1_000n,
    periodEnd: 0n,
    resultDigest: ZERO_BYTES32,
    ...overrides,
  };
}

export async function sign(fx: Fixture, who: Wallet, cp: LegacyCheckpoint): Promise<string> {
  return signLegacyCheckpoint(who, fx.domain, cp);
}

export function eventNames(fx: Fixture, receipt: import('ethers').TransactionReceipt): string[] {
  return receipt.logs.map((log) => fx.market.interface.parseLog(log)?.name).filter((n): n is string => !!n);
}
