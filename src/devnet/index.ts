export { Devnet, DEVNET_FUNDING, devnetChainSettings, type DevnetInfo, type DevnetOptions } from './devnet';
export { startAnvil, freePort, anvilBinary, type AnvilInstance, type AnvilOptions } from './anvil';
export { DEV_MNEMONIC, DEV_ACCOUNT, devPrivateKey } from './dev-accounts';
