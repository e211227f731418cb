import type { ContractRunner } from 'ethers';
import { marketplaceV2Abi as marketplaceAbi } from './artifacts/marketplace-v2';
import { mockTokenAbi } from './artifacts/mock-token';
import { TypedContract } from './typed-contract';

export type MarketplaceAbi = typeof marketplaceAbi;
export type MarketplaceContract = TypedContract<MarketplaceAbi>;
export type TokenContract = TypedContract<typeof mockTokenAbi>;

/** Typed binding of a deployed MarketplaceV2; reads go through `runner`, writes through the TransactionSender. */
export function marketplaceAt(address: string, runner: ContractRunner | null): MarketplaceContract {
  return new TypedContract(marketplaceAbi, address, runner);
}

/** Typed binding of the payment token (any ERC-20; the devnet's also has `mint`). */
export function tokenAt(address: string, runner: ContractRunner | null): TokenContract {
  return new TypedContract(mockTokenAbi, address, runner);
}

/** What the marketplace holds for a provider: credited earnings, and the payout address withdraw() pays them to. */
export interface ProviderAccount {
  earnings: bigint;
  payout: string;
  bond: bigint;
  /** 0 none, 1 active, 2 unbonding, 3 slashed. */
  status: number;
}

/** ProviderStatus.Slashed in the contract: barred for good, its claims revert. */
export const PROVIDER_SLASHED = 3;

export async function providerAccount(marketplace: MarketplaceContract, provider: string): Promise<ProviderAccount> {
  const info = (await marketplace.read('getProvider', [provider])) as unknown as { earnings: bigint; payout: string; bond: bigint; status: bigint };
  return { earnings: info.earnings, payout: info.payout, bond: info.bond, status: Number(info.status) };
}
