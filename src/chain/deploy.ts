import { ContractFactory, type Signer } from 'ethers';
import { marketplaceAbi, marketplaceBytecode } from './artifacts/marketplace';
import { mockTokenAbi, mockTokenBytecode } from './artifacts/mock-token';

export interface MarketplaceParams {
  tokenAddress: string;
  /** Least bond a provider must post, in token base units. */
  minBond: bigint;
  /** Seconds a unilateral claim waits for disputes before it is payable. */
  challengeWindowSeconds: bigint;
  /** Seconds between `unregister` and `withdrawBond`. */
  unbondingDelaySeconds: bigint;
}

/** Defaults the devnet deploys with; a real network chooses its own at deployment. */
export const DEVNET_MARKETPLACE_PARAMS = {
  minBond: 100n * 10n ** 18n,
  challengeWindowSeconds: 3_600n,
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
  const factory = new ContractFactory(marketplaceAbi as unknown as FactoryAbi, marketplaceBytecode, signer);
  const contract = await factory.deploy(
    params.tokenAddress,
    params.minBond,
    params.challengeWindowSeconds,
    params.unbondingDelaySeconds,
  );
  await contract.waitForDeployment();
  return contract.getAddress();
}
