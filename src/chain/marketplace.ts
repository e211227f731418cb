import type { ContractRunner } from 'ethers';
import { marketplaceAbi } from './artifacts/marketplace';
import { mockTokenAbi } from './artifacts/mock-token';
import { TypedContract } from './typed-contract';

export type MarketplaceAbi = typeof marketplaceAbi;
export type MarketplaceContract = TypedContract<MarketplaceAbi>;
export type TokenContract = TypedContract<typeof mockTokenAbi>;

/** Typed binding of a deployed Marketplace; reads go through `runner`, writes through the TransactionSender. */
export function marketplaceAt(address: string, runner: ContractRunner | null): MarketplaceContract {
  return new TypedContract(marketplaceAbi, address, runner);
}

/** Typed binding of the payment token (any ERC-20; the devnet's also has `mint`). */
export function tokenAt(address: string, runner: ContractRunner | null): TokenContract {
  return new TypedContract(mockTokenAbi, address, runner);
}
