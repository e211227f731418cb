/**
 * Gas per MarketplaceV2 call, measured on a fresh anvil: `npm run bench -- gas-v2`. The scenario is
 * bench/gas.ts's (lease 1: open, redeem, claim, finalise, withdraw, close, settle; lease 2: a claim
 * over 8 usage records, one overcharged, disputed; lease 3: equivocation), plus every other
 * dispute path and a late claim. Today's Marketplace is measured in the same run, by bench/gas.ts
 * itself, as the baseline. Prints a table, then one JSON line:
 * {"openLease","claim","redeem","withdraw","dispute",...,"v1":{...},"ratio":{...}} in gas units.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Contract, Wallet, id, type InterfaceAbi, type TransactionReceipt } from 'ethers';
import { startAnvil, devPrivateKey } from '../src/devnet';
import { createRpcProvider, deployMockToken, ZERO_BYTES32, type Rates } from '../src/chain';
import {
  checkpointOf,
  deployMarketplace,
  marketplaceDomain,
  nextRecord,
  signCheckpoint,
  signQuote,
  usageTree,
  type Allocation,
  type Checkpoint,
  type LeaseTerms,
  type Quote,
  type UsageRecord,
} from '../src/chain';
import { marketplaceV2Abi } from '../src/chain/artifacts/marketplace-v2';
import { mockTokenAbi } from '../src/chain/artifacts/mock-token';

const BUDGET: Record<string, number> = { openLease: 120_000, claim: 80_000, redeem: 70_000, withdraw: 45_000 };

/** bench/gas.ts's JSON line, from its own run. */
async function measureV1(): Promise<Record<string, number>> {
  const { stdout } = await promisify(execFile)(process.execPath, [require.resolve('tsx/cli'), join(__dirname, 'run.ts'), 'gas'], {
    maxBuffer: 1 << 20,
  });
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Record<string, number>;
}

export async function run(_args: string[]): Promise<void> {
  const v1 = measureV1();
  const anvil = await startAnvil({ blockTimeSeconds: 0 });
  const rpc = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId });
  try {
    const [deployer, provider, tenant, payout, finder] = [0, 1, 2, 5, 3].map((i) => new Wallet(devPrivateKey(i), rpc)) as [Wallet, Wallet, Wallet, Wallet, Wallet];
    const treasury = new Wallet(devPrivateKey(6)).address;
    const tokenAddress = await deployMockToken(deployer);
    const marketAddress = await deployMarketplace(deployer, {
      tokenAddress,
      treasury,
      minBond: 10n ** 20n,
      challengeWindowSeconds: 3_600n,
      lateWindowSeconds: 86_400n,
      unbondingDelaySeconds: 7n * 86_400n,
    });
    const token = new Contract(tokenAddress, mockTokenAbi as unknown as InterfaceAbi, deployer);
    const market = new Contract(marketAddress, marketplaceV2Abi as unknown as InterfaceAbi, deployer);
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
    /** Measures a call that changes what follows (a slash), then undoes it. */
    const aside = async (body: () => Promise<unknown>): Promise<void> => {
      const snapshot = (await rpc.send('evm_snapshot', [])) as string;
      await body();
      await rpc.send('evm_revert', [snapshot]);
    };

    // The payout address holds tokens already, as bench/gas.ts's provider does: a withdrawal to an
    // empty one also creates its balance slot (measured separately below).
    for (const who of [provider, tenant, payout]) {
      await send(undefined, token, 'mint', who.address, 10n ** 24n);
      await send(undefined, token.connect(who) as Contract, 'approve', marketAddress, 2n ** 255n);
    }
    await send('registerProvider', as(provider), 'registerProvider', 'https://provider.example', '{"region":"bench","gpus":{"H100":8}}', 10n ** 20n, payout.address);

    const rates: Rates = { perSecond: 10n ** 12n, perCpuSecond: 10n ** 13n, perGpuSecond: 10n ** 15n, perGiBEgress: 10n ** 16n };
    const allocation: Allocation = { cpuMillicores: 1_000n, gpuCount: 1n, egressBytesPerSecond: 1_000_000n };
    let nonce = 1n;
    const open = async (label?: string): Promise<{ leaseId: bigint; terms: LeaseTerms }> => {
      const quote: Quote = {
        provider: provider.address,
        tenant: tenant.address,
        manifestHash: id(`manifest-${nonce}`),
        rates,
        allocation,
        maxDuration: 86_400n,
        expiresAt: (await now()) + 300n,
        nonce: nonce++,
      };
      const receipt = await send(label, as(tenant), 'openLease', quote, await signQuote(provider, domain, quote), 10n ** 21n);
      const log = receipt.logs.map((l) => market.interface.parseLog(l)).find((e) => e?.name === 'LeaseOpened')!;
      const t = log.args.getValue('terms');
      const terms: LeaseTerms = {
        provider: t.provider,
        tenant: t.tenant,
        startedAt: t.startedAt,
        deposit: t.deposit,
        rates: { perSecond: t.rates[0], perCpuSecond: t.rates[1], perGpuSecond: t.rates[2], perGiBEgress: t.rates[3] },
        allocation: { cpuMillicores: t.allocation[0], gpuCount: t.allocation[1], egressBytesPerSecond: t.allocation[2] },
      };
      return { leaseId: log.args.getValue('leaseId') as bigint, terms };
    };
    const checkpoint = (leaseId: bigint, recordCount: bigint, cumulativeAmount: bigint, periodEnd: bigint, usageRoot = id(`root-${recordCount}`)): Checkpoint => ({
      leaseId,
      usageRoot,
      recordCount,
      cumulativeAmount,
      periodEnd,
      resultDigest: ZERO_BYTES32,
    });
    /** bench/gas.ts's 8 records of 60 s, with index and running total; `usageAt` alters one's usage (repriced), `overcharge` one's amount. */
    const records = (leaseId: bigint, startedAt: bigint, options: { overcharge?: number; usageAt?: [number, Partial<UsageRecord>] } = {}): UsageRecord[] => {
      const out: UsageRecord[] = [];
      for (let i = 0; i < 8; i += 1) {
        const base = { t0: startedAt + BigInt(i) * 60n, t1: startedAt + BigInt(i + 1) * 60n, cpuMillis: 45_000n, memoryByteSeconds: 60n * 2n ** 32n, gpuMillis: 60_000n, rxBytes: 10n ** 6n, txBytes: 10n ** 7n };
        const usage = options.usageAt?.[0] === i ? { ...base, ...options.usageAt[1] } : base;
        const record = nextRecord(leaseId, out[i - 1], rates, usage);
        const amount = i === options.overcharge ? record.amount + 1n : record.amount;
        out.push({ ...record, amount, total: (out[i - 1]?.total ?? 0n) + amount });
      }
      return out;
    };
    const proven = (list: UsageRecord[], i: number) => ({ record: list[i]!, proof: usageTree(list).getProof(i) });
    const signed = async (cp: Checkpoint) => ({ checkpoint: cp, signature: await signCheckpoint(provider, domain, cp) });

    // Lease 1: redeem, then a unilateral claim, its finalisation, a withdrawal, close and settle.
    const first = await open('openLease');
    await advance(600);
    const redeemCp = checkpoint(first.leaseId, 10n, 10n ** 17n, await now());
    await send('redeem', as(provider), 'redeem', first.terms, redeemCp, await signCheckpoint(provider, domain, redeemCp), await signCheckpoint(tenant, domain, redeemCp));
    await advance(600);
    const claimCp = checkpoint(first.leaseId, 20n, 2n * 10n ** 17n, await now());
    await send('claim', as(provider), 'claim', first.terms, claimCp, await signCheckpoint(provider, domain, claimCp));
    await advance(3_600);
    await send('finalizeClaim', market, 'finalizeClaim', first.leaseId);
    await send('withdraw', as(provider), 'withdraw');
    await send('closeLease', as(tenant), 'closeLease', first.leaseId, first.terms);
    await advance(3_600);
    await send('settleLease', as(provider), 'settleLease', first.leaseId, first.terms);

    // Lease 2: a claim over 8 usage records, one overcharged, disputed with its Merkle proof; then
    // each other dispute path against a claim that gives it evidence.
    const second = await open();
    const claimRecords = async (list: UsageRecord[], overrides: Partial<Checkpoint> = {}, label?: string) => {
      const cp = { ...checkpointOf(second.leaseId, list), ...overrides };
      await send(label, as(provider), 'claim', second.terms, cp, await signCheckpoint(provider, domain, cp));
      return cp;
    };
    await advance(600);
    const overcharged = records(second.leaseId, second.terms.startedAt, { overcharge: 5 });
    await aside(async () => {
      const cp = await claimRecords(overcharged);
      await send('dispute', as(tenant), 'disputeRecord', second.terms, cp, proven(overcharged, 5));
    });
    await aside(async () => {
      // Record 3 counts 61 CPU-seconds in 60 s on a 1-core allocation, priced right.
      const list = records(second.leaseId, second.terms.startedAt, { usageAt: [3, { cpuMillis: 61_000n }] });
      const cp = await claimRecords(list);
      await send('disputeRecord (over allocation)', as(tenant), 'disputeRecord', second.terms, cp, proven(list, 3));
    });
    await aside(async () => {
      const list = records(second.leaseId, second.terms.startedAt);
      const cp = await claimRecords(list, { cumulativeAmount: list[7]!.total + 1n });
      await send('disputeRecord (last total)', as(tenant), 'disputeRecord', second.terms, cp, proven(list, 7));
    });
    await aside(async () => {
      const list = records(second.leaseId, second.terms.startedAt);
      const overlapping = list.map((r, i) => (i === 4 ? { ...r, t0: r.t0 - 30n, t1: r.t1 - 30n } : r));
      const cp = await claimRecords(overlapping);
      await send('disputeRecordPair', as(tenant), 'disputeRecordPair', second.terms, cp, proven(overlapping, 3), proven(overlapping, 4));
    });
    await aside(async () => {
      const list = records(second.leaseId, second.terms.startedAt);
      const remetered = list.map((r, i) => (i === 2 ? { ...r, rxBytes: r.rxBytes + 1n } : r));
      const a = await signed(checkpointOf(second.leaseId, list.slice(0, 4)));
      const b = await signed(checkpointOf(second.leaseId, remetered));
      await send('disputeConflictingRecords', as(tenant), 'disputeConflictingRecords', second.terms, a, proven(list.slice(0, 4), 2), b, proven(remetered, 2));
    });
    await aside(async () => {
      await send('disputeEquivocation (by a third party)', as(finder), 'disputeEquivocation', second.terms, await signed(checkpoint(second.leaseId, 4n, 1n, 0n, id('a'))), await signed(checkpoint(second.leaseId, 4n, 1n, 0n, id('b'))));
    });
    await aside(async () => {
      // A late claim: after end + challengeWindow of a closed lease.
      await send(undefined, as(tenant), 'closeLease', second.leaseId, second.terms);
      await advance(3_700);
      await claimRecords(records(second.leaseId, second.terms.startedAt), {}, 'claim (late)');
    });

    // A withdrawal to a payout address that holds no tokens yet (it creates the balance slot).
    await aside(async () => {
      const fresh = Wallet.createRandom().address;
      const cp = checkpoint(second.leaseId, 1n, 10n ** 15n, await now());
      await send(undefined, as(provider), 'redeem', second.terms, cp, await signCheckpoint(provider, domain, cp), await signCheckpoint(tenant, domain, cp));
      await send(undefined, as(payout), 'setPayout', provider.address, fresh);
      await send('withdraw (to an empty payout)', as(provider), 'withdraw');
    });

    // Lease 3: equivocation (two checkpoints of one prefix, different roots) slashes the bond.
    const third = await open();
    await send('disputeEquivocation', as(tenant), 'disputeEquivocation', third.terms, await signed(checkpoint(third.leaseId, 4n, 1n, 0n, id('a'))), await signed(checkpoint(third.leaseId, 4n, 1n, 0n, id('b'))));

    const baseline = await v1;
    const width = Math.max(...Object.keys(gas).map((k) => k.length));
    process.stdout.write(`MarketplaceV2 gas per call (anvil ${anvil.chainId}, solc optimizer 200 runs); v1 = Marketplace by bench/gas.ts in this run\n`);
    process.stdout.write(`  ${'call'.padEnd(width)}  ${'v2'.padStart(8)}  ${'v1'.padStart(8)}  ${'v2/v1'.padStart(6)}  ${'budget'.padStart(8)}\n`);
    for (const [name, used] of Object.entries(gas)) {
      const before = baseline[name];
      const ratio = before ? (Number(used) / before).toFixed(2) : '';
      const budget = BUDGET[name] ? `${Number(used) <= BUDGET[name] ? '≤' : '>'} ${BUDGET[name]}` : '';
      process.stdout.write(`  ${name.padEnd(width)}  ${used.toString().padStart(8)}  ${(before?.toString() ?? '').padStart(8)}  ${ratio.padStart(6)}  ${budget.padStart(8)}\n`);
    }
    process.stdout.write('  (dispute = disputeRecord over an 8-record tree, proof of 3 hashes, as bench/gas.ts; every upheld dispute slashes: 3 transfers)\n');
    const summary: Record<string, unknown> = Object.fromEntries(Object.entries(gas).map(([k, v]) => [k, Number(v)]));
    summary.v1 = baseline;
    summary.ratio = Object.fromEntries(
      Object.keys(baseline).filter((k) => gas[k] !== undefined).map((k) => [k, Number((Number(gas[k]) / (baseline[k] as number)).toFixed(3))]),
    );
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    rpc.destroy();
    await anvil.stop();
  }
}
