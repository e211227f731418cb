/**
 * Gas per marketplace call, measured on a fresh anvil: `npm run bench -- gas`.
 * Prints a table, then one JSON line {"openLease","claim","redeem","withdraw","dispute"} in gas units.
 */
import { Contract, Wallet, id, type InterfaceAbi, type TransactionReceipt } from 'ethers';
import { startAnvil, devPrivateKey } from '../src/devnet';
import {
  createRpcProvider,
  deployMarketplace,
  deployMockToken,
  marketplaceDomain,
  signCheckpoint,
  signQuote,
  usageAmount,
  usageTree,
  ZERO_BYTES32,
  type Checkpoint,
  type Quote,
  type Rates,
  type UsageRecord,
} from '../src/chain';
import { marketplaceAbi } from '../src/chain/artifacts/marketplace';
import { mockTokenAbi } from '../src/chain/artifacts/mock-token';

export async function run(_args: string[]): Promise<void> {
  const anvil = await startAnvil({ blockTimeSeconds: 0 });
  const rpc = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId });
  try {
    const [deployer, provider, tenant] = [0, 1, 2].map((i) => new Wallet(devPrivateKey(i), rpc)) as [Wallet, Wallet, Wallet];
    const tokenAddress = await deployMockToken(deployer);
    const marketAddress = await deployMarketplace(deployer, {
      tokenAddress,
      minBond: 10n ** 20n,
      challengeWindowSeconds: 3_600n,
      unbondingDelaySeconds: 7n * 86_400n,
    });
    const token = new Contract(tokenAddress, mockTokenAbi as unknown as InterfaceAbi, deployer);
    const market = new Contract(marketAddress, marketplaceAbi as unknown as InterfaceAbi, deployer);
    const domain = marketplaceDomain(anvil.chainId, marketAddress);
    const gas: Record<string, bigint> = {};

    const send = async (label: string | undefined, contract: Contract, name: string, ...args: unknown[]): Promise<TransactionReceipt> => {
      const tx = await contract.getFunction(name)(...args);
      const receipt = (await tx.wait()) as TransactionReceipt;
      if (label) gas[label] = receipt.gasUsed;
      return receipt;
    };
    const as = (who: Wallet): Contract => market.connect(who) as Contract;
    const now = async (): Promise<bigint> => {
      await rpc.send('evm_mine', []);
      return BigInt((await rpc.getBlock('latest'))!.timestamp);
    };
    const advance = async (seconds: number): Promise<void> => {
      await rpc.send('evm_increaseTime', [seconds]);
      await rpc.send('evm_mine', []);
    };

    for (const who of [provider, tenant]) {
      await send(undefined, token, 'mint', who.address, 10n ** 24n);
      await send(undefined, token.connect(who) as Contract, 'approve', marketAddress, 2n ** 255n);
    }
    await send('registerProvider', as(provider), 'registerProvider', 'https://provider.example', '{"region":"bench","gpus":{"H100":8}}', 10n ** 20n);

    const rates: Rates = { perSecond: 10n ** 12n, perCpuSecond: 10n ** 13n, perGpuSecond: 10n ** 15n, perGiBEgress: 10n ** 16n };
    let nonce = 1n;
    const open = async (label?: string): Promise<bigint> => {
      const quote: Quote = {
        provider: provider.address,
        tenant: tenant.address,
        manifestHash: id(`manifest-${nonce}`),
        rates,
        maxRatePerSecond: 10n ** 16n,
        maxDuration: 86_400n,
        expiresAt: (await now()) + 300n,
        nonce: nonce++,
      };
      const receipt = await send(label, as(tenant), 'openLease', quote, await signQuote(provider, domain, quote), 10n ** 21n);
      const log = receipt.logs.map((l) => market.interface.parseLog(l)).find((e) => e?.name === 'LeaseOpened');
      return log!.args.getValue('leaseId') as bigint;
    };
    const checkpoint = (leaseId: bigint, seq: bigint, cumulativeAmount: bigint, periodEnd: bigint, usageRoot = id(`root-${seq}`)): Checkpoint => ({
      leaseId,
      seq,
      usageRoot,
      cumulativeAmount,
      periodEnd,
      resultDigest: ZERO_BYTES32,
    });

    // Lease 1: redeem, then a unilateral claim, its finalisation, a withdrawal, close and settle.
    const first = await open('openLease');
    await advance(600);
    const redeemCp = checkpoint(first, 1n, 10n ** 17n, await now());
    await send('redeem', as(provider), 'redeem', redeemCp, await signCheckpoint(provider, domain, redeemCp), await signCheckpoint(tenant, domain, redeemCp));
    await advance(600);
    const claimCp = checkpoint(first, 2n, 2n * 10n ** 17n, await now());
    await send('claim', as(provider), 'claim', claimCp, await signCheckpoint(provider, domain, claimCp));
    await advance(3_600);
    await send('finalizeClaim', market, 'finalizeClaim', first);
    await send('withdraw', as(provider), 'withdraw');
    await send('closeLease', as(tenant), 'closeLease', first);
    await advance(3_600);
    await send('settleLease', market, 'settleLease', first);

    // Lease 2: a claim over 8 usage records, one overcharged, disputed with its Merkle proof.
    const second = await open();
    const startedAt = BigInt((await market.getFunction('getLease')(second)).startedAt as bigint);
    const records: UsageRecord[] = Array.from({ length: 8 }, (_, i) => {
      const base = {
        leaseId: second,
        seq: BigInt(i),
        t0: startedAt + BigInt(i) * 60n,
        t1: startedAt + BigInt(i + 1) * 60n,
        cpuMillis: 45_000n,
        memoryByteSeconds: 60n * 2n ** 32n,
        gpuMillis: 60_000n,
        rxBytes: 10n ** 6n,
        txBytes: 10n ** 7n,
      };
      return { ...base, amount: usageAmount(rates, base) + (i === 5 ? 1n : 0n) };
    });
    const tree = usageTree(records);
    await advance(600);
    const disputed = checkpoint(second, 1n, 10n ** 15n, await now(), tree.root);
    await send(undefined, as(provider), 'claim', disputed, await signCheckpoint(provider, domain, disputed));
    await send('dispute', as(tenant), 'disputeUsage', second, rates, records[5], tree.getProof(5));

    // Lease 3: equivocation (two checkpoints, same seq, different roots) slashes the bond.
    const third = await open();
    const a = checkpoint(third, 4n, 1n, 0n, id('a'));
    const b = checkpoint(third, 4n, 1n, 0n, id('b'));
    await send('disputeEquivocation', as(tenant), 'disputeEquivocation', a, await signCheckpoint(provider, domain, a), b, await signCheckpoint(provider, domain, b));

    const width = Math.max(...Object.keys(gas).map((k) => k.length));
    process.stdout.write(`Marketplace gas per call (anvil ${anvil.chainId}, solc optimizer 200 runs)\n`);
    for (const [name, used] of Object.entries(gas)) process.stdout.write(`  ${name.padEnd(width)}  ${used.toString().padStart(8)}\n`);
    process.stdout.write('  (dispute = disputeUsage over an 8-record tree, proof of 3 hashes)\n');
    const summary = {
      openLease: Number(gas.openLease),
      claim: Number(gas.claim),
      redeem: Number(gas.redeem),
      withdraw: Number(gas.withdraw),
      dispute: Number(gas.dispute),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    rpc.destroy();
    await anvil.stop();
  }
}
