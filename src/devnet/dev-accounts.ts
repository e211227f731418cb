import { HDNodeWallet, Mnemonic } from 'ethers';

/**
 * anvil's well-known development accounts (the "test test ... junk" mnemonic). Their keys are
 * public knowledge: anything they hold on a real network is stolen at once. Only the devnet
 * and tests use them.
 */
export const DEV_MNEMONIC = 'test test test test test test test test test test test junk';

export const DEV_ACCOUNT = {
  deployer: 0,
  provider: 1,
  tenant: 2,
} as const;

/** Private key of anvil's account `index` (m/44'/60'/0'/0/index). */
export function devPrivateKey(index: number): string {
  return HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(DEV_MNEMONIC), `m/44'/60'/0'/0/${index}`).privateKey;
}
