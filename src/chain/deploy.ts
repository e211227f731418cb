import { ContractFactory, type Signer } from 'ethers';
import { marketplaceV2Abi, marketplaceV2Bytecode } from './artifacts/marketplace-v2';
import { mockTokenAbi, mockTokenBytecode } from './artifacts/mock-token';

/** MarketplaceV2's constructor parameters (docs/settlement-v2.md, "Parameters"). */
export interface MarketplaceParams {
  tokenAddress: string;
  /** Receives what a slash does not pay out; a burn address (0x…dEaD) burns it. */
  treasury: string;
  /** Least bond a provider must post, in token base units. */
  minBond: bigint;
  /** Seconds a unilateral claim waits for disputes before it is payable; never 0. */
  challengeWindowSeconds: bigint;
  /** Seconds after end + challengeWindow in which a late claim is still paid (less the late penalty). */
  lateWindowSeconds: bigint;
  /** Seconds between `unregister` and `withdrawBond`. */
  unbondingDelaySeconds: bigint;
}

/** The burn address: on the devnet a slash's rest is burnt, no one's treasury. */
export const BURN_ADDRESS = '0x000000000000000000000000000000000000dEaD';

/** Defaults the devnet deploys with; a real network chooses its own at deployment. */
export const DEVNET_MARKETPLACE_PARAMS = {
  treasury: BURN_ADDRESS,
  minBond: 100n * 10n ** 18n,
  challengeWindowSeconds: 3_600n,
  lateWindowSeconds: 86_400n,
  unbondingDelaySeconds: 7n * 86_400n,
} as const;

type FactoryAbi = ConstructorParameters<typeof ContractFactory>[0];

export async function deployMockToken(signer: Signer, name = 'Devnet Compute Token', symbol = 'DCT'): Promise<string> {
  const factory = new ContractFactory(mockTokenAbi as unknown as FactoryAbi, mockTokenBytecode, signer);
  const contract = await factory.deploy(name, symbol);
  await contract.waitForDeployment();
  return contract.getAddress();
}

export async function deployMarketplace(signer: Signer, params: MarketplaceParams): Promise<string> {
  const factory = new ContractFactory(marketplaceV2Abi as unknown as FactoryAbi, marketplaceV2Bytecode, signer);
  const contract = await factory.deploy(
    params.tokenAddress,
    params.treasury,
    params.minBond,
    params.challengeWindowSeconds,
    params.lateWindowSeconds,
    params.unbondingDelaySeconds,
  );
  await contract.waitForDeployment();
  return contract.getAddress();
}
