import { Contract, ContractFactory, id, type InterfaceAbi } from 'ethers';
import {
  advance,
  aCheckpoint,
  as,
  CHALLENGE_WINDOW,
  eventNames,
  latestTimestamp,
  MAX_RATE,
  MIN_BOND,
  openLease,
  RATES,
  registerProvider,
  revertName,
  send,
  sign,
  startFixture,
  stopFixture,
  TOKEN,
  UNBONDING_DELAY,
  aQuote,
  type Fixture,
} from './fixture';
import { hashCheckpoint, hashQuote, signCheckpoint, signQuote, usageAmount, usageTree, type UsageRecord } from '../../../src/chain/protocol';
import { deployMarketplace } from '../../../src/chain/deploy';
import { hostileTokenAbi, hostileTokenBytecode } from '../../fixtures/contracts/hostile-token';

jest.setTimeout(60_000);

let fx: Fixture;
let snapshot: string;

beforeAll(async () => {
  fx = await startFixture();
  await registerProvider(fx);
});

afterAll(async () => {
  await stopFixture(fx);
});

// Every test starts from the same chain: registered provider, funded and approved actors.
beforeEach(async () => {
  snapshot = (await fx.rpc.send('evm_snapshot', [])) as string;
});
afterEach(async () => {
  await fx.rpc.send('evm_revert', [snapshot]);
});

async function balance(address: string): Promise<bigint> {
  return (await fx.token.getFunction('balanceOf')(address)) as bigint;
}

async function claimAfter(leaseId: bigint, seconds: bigint, cumulativeAmount: bigint, seq = 1n) {
  await advance(fx, seconds);
  const cp = aCheckpoint(leaseId, { seq, cumulativeAmount, periodEnd: await latestTimestamp(fx) });
  const receipt = await send(as(fx, fx.provider), 'claim', cp, await sign(fx, fx.provider, cp));
  return { cp, receipt };
}

function aRecord(leaseId: bigint, t0: bigint, overrides: Partial<UsageRecord> = {}): UsageRecord {
  const base = {
    leaseId,
    seq: 0n,
    t0,
    t1: t0 + 10n,
    cpuMillis: 7_500n,
    memoryByteSeconds: 10n * 2n ** 30n,
    gpuMillis: 10_000n,
    rxBytes: 1_000n,
    txBytes: 3n * 2n ** 29n,
    ...overrides,
  };
  return { ...base, amount: overrides.amount ?? usageAmount(RATES, base) };
}

describe('provider registry', () => {
  it('registers with a bond and refuses a second registration', async () => {
    const receipt = await send(as(fx, fx.otherProvider), 'registerProvider', 'https://b.example', '{}', MIN_BOND);
    expect(eventNames(fx, receipt)).toEqual(['ProviderRegistered']);
    const info = await fx.market.getFunction('getProvider')(fx.otherProvider.address);
    expect(info.bond).toBe(MIN_BOND);
    expect(await revertName(as(fx, fx.otherProvider).getFunction('registerProvider')('x', '{}', MIN_BOND))).toBe('AlreadyRegistered');
  });

  it('refuses a bond below the minimum', async () => {
    expect(await revertName(as(fx, fx.otherProvider).getFunction('registerProvider')('x', '{}', MIN_BOND - 1n))).toBe('BondTooLow');
  });

  it('updates, unbonds after the delay only, and takes no lease while unbonding', async () => {
    expect(eventNames(fx, await send(as(fx, fx.provider), 'updateProvider', 'https://new.example', '{"gpus":1}'))).toEqual([
      'ProviderUpdated',
    ]);
    await send(as(fx, fx.provider), 'unregister');
    expect(await revertName(openLease(fx))).toBe('ProviderNotActive');
    expect(await revertName(as(fx, fx.provider).getFunction('withdrawBond')())).toBe('BondLocked');
    await advance(fx, UNBONDING_DELAY);
    const before = await balance(fx.provider.address);
    expect(eventNames(fx, await send(as(fx, fx.provider), 'withdrawBond'))).toEqual(['BondWithdrawn']);
    expect((await balance(fx.provider.address)) - before).toBe(MIN_BOND);
    expect(await revertName(as(fx, fx.provider).getFunction('withdrawBond')())).toBe('NotUnbonding');
  });
});

describe('bond held while leases can be claimed', () => {
  it('keeps the bond past the unbonding delay until the longest lease can no longer be claimed or disputed', async () => {
    const tenDays = 10n * 86_400n;
    await openLease(fx, { maxDuration: tenDays });
    await send(as(fx, fx.provider), 'unregister');
    await advance(fx, UNBONDING_DELAY);
    expect(await revertName(as(fx, fx.provider).getFunction('withdrawBond')())).toBe('BondLocked');
    await advance(fx, tenDays - UNBONDING_DELAY + 2n * CHALLENGE_WINDOW);
    expect(eventNames(fx, await send(as(fx, fx.provider), 'withdrawBond'))).toEqual(['BondWithdrawn']);
  });
});

describe('openLease', () => {
  it('escrows the deposit and emits LeaseOpened', async () => {
    const before = await balance(await fx.market.getAddress());
    const leaseId = await openLease(fx, {}, 5_000n);
    expect(leaseId).toBe(1n);
    expect((await balance(await fx.market.getAddress())) - before).toBe(5_000n);
    const lease = await fx.market.getFunction('getLease')(leaseId);
    expect(lease.tenant).toBe(fx.tenant.address);
    expect(lease.escrow).toBe(5_000n);
  });

  it('refuses a replayed quote', async () => {
    const quote = await aQuote(fx);
    const sig = await signQuote(fx.provider, fx.domain, quote);
    await send(as(fx, fx.tenant), 'openLease', quote, sig, 1_000n);
    expect(await revertName(as(fx, fx.tenant).getFunction('openLease')(quote, sig, 1_000n))).toBe('QuoteAlreadyUsed');
  });

  it('refuses a quote made out to another tenant', async () => {
    const quote = await aQuote(fx);
    const sig = await signQuote(fx.provider, fx.domain, quote);
    expect(await revertName(as(fx, fx.other).getFunction('openLease')(quote, sig, 1_000n))).toBe('NotTenant');
    const forOther = await aQuote(fx, { tenant: fx.other.address });
    expect(await revertName(as(fx, fx.tenant).getFunction('openLease')(forOther, await signQuote(fx.provider, fx.domain, forOther), 1_000n))).toBe(
      'NotTenant',
    );
  });

  it('refuses an expired quote', async () => {
    const quote = await aQuote(fx);
    const sig = await signQuote(fx.provider, fx.domain, quote);
    await advance(fx, 301n);
    expect(await revertName(as(fx, fx.tenant).getFunction('openLease')(quote, sig, 1_000n))).toBe('QuoteExpired');
  });

  it('refuses a quote not signed by its provider, or altered after signing', async () => {
    expect(await revertName(openLease(fx, {}, 1_000n, fx.tenant))).toBe('BadSignature');
    const quote = await aQuote(fx);
    const sig = await signQuote(fx.provider, fx.domain, quote);
    const cheaper = { ...quote, rates: { ...quote.rates, perSecond: 1n } };
    expect(await revertName(as(fx, fx.tenant).getFunction('openLease')(cheaper, sig, 1_000n))).toBe('BadSignature');
  });

  it('refuses a zero deposit', async () => {
    expect(await revertName(openLease(fx, {}, 0n))).toBe('ZeroDeposit');
  });
});

describe('redeem', () => {
  it('pays the increase at once and refuses replayed or decreasing checkpoints', async () => {
    const leaseId = await openLease(fx);
    const cp1 = aCheckpoint(leaseId, { cumulativeAmount: 4_000n });
    const before = await balance(fx.provider.address);
    const receipt = await send(as(fx, fx.other), 'redeem', cp1, await sign(fx, fx.provider, cp1), await sign(fx, fx.tenant, cp1));
    expect(eventNames(fx, receipt)).toEqual(['CheckpointRedeemed']);
    expect((await balance(fx.provider.address)) - before).toBe(4_000n);

    expect(await revertName(as(fx, fx.other).getFunction('redeem')(cp1, await sign(fx, fx.provider, cp1), await sign(fx, fx.tenant, cp1)))).toBe(
      'StaleCheckpoint',
    );
    const lower = aCheckpoint(leaseId, { seq: 2n, cumulativeAmount: 3_000n });
    expect(await revertName(as(fx, fx.other).getFunction('redeem')(lower, await sign(fx, fx.provider, lower), await sign(fx, fx.tenant, lower)))).toBe(
      'StaleCheckpoint',
    );
    const cp2 = aCheckpoint(leaseId, { seq: 2n, cumulativeAmount: 6_500n });
    await send(as(fx, fx.other), 'redeem', cp2, await sign(fx, fx.provider, cp2), await sign(fx, fx.tenant, cp2));
    expect((await balance(fx.provider.address)) - before).toBe(6_500n);
  });

  it('needs the tenant countersignature', async () => {
    const leaseId = await openLease(fx);
    const cp = aCheckpoint(leaseId);
    const providerSig = await sign(fx, fx.provider, cp);
    expect(await revertName(as(fx, fx.provider).getFunction('redeem')(cp, providerSig, providerSig))).toBe('BadSignature');
  });

  it('refuses a checkpoint signed for another lease', async () => {
    const first = await openLease(fx);
    const second = await openLease(fx);
    const cp = aCheckpoint(first);
    const [p, t] = [await sign(fx, fx.provider, cp), await sign(fx, fx.tenant, cp)];
    expect(await revertName(as(fx, fx.provider).getFunction('redeem')({ ...cp, leaseId: second }, p, t))).toBe('BadSignature');
    expect(await revertName(as(fx, fx.provider).getFunction('claim')({ ...cp, leaseId: second }, p))).toBe('BadSignature');
  });

  it('pays no more than the escrow', async () => {
    const leaseId = await openLease(fx, {}, 1_000n);
    const cp = aCheckpoint(leaseId, { cumulativeAmount: 5_000n });
    const before = await balance(fx.provider.address);
    await send(as(fx, fx.provider), 'redeem', cp, await sign(fx, fx.provider, cp), await sign(fx, fx.tenant, cp));
    expect((await balance(fx.provider.address)) - before).toBe(1_000n);
    const more = aCheckpoint(leaseId, { seq: 2n, cumulativeAmount: 6_000n });
    expect(await revertName(as(fx, fx.provider).getFunction('redeem')(more, await sign(fx, fx.provider, more), await sign(fx, fx.tenant, more)))).toBe(
      'EscrowExhausted',
    );
  });
});

describe('claim', () => {
  it('is payable only after the challenge window, into earnings, withdrawn once', async () => {
    const leaseId = await openLease(fx);
    const { receipt } = await claimAfter(leaseId, 100n, 50_000n);
    expect(eventNames(fx, receipt)).toEqual(['ClaimSubmitted']);
    expect(await revertName(fx.market.getFunction('finalizeClaim')(leaseId))).toBe('ChallengeWindowOpen');
    await advance(fx, CHALLENGE_WINDOW);
    expect(eventNames(fx, await send(as(fx, fx.other), 'finalizeClaim', leaseId))).toEqual(['ClaimFinalized']);
    expect(await fx.market.getFunction('earnings')(fx.provider.address)).toBe(50_000n);
    expect(await revertName(fx.market.getFunction('finalizeClaim')(leaseId))).toBe('NoPendingClaim');

    const before = await balance(fx.provider.address);
    expect(eventNames(fx, await send(as(fx, fx.provider), 'withdraw'))).toEqual(['Withdrawn']);
    expect((await balance(fx.provider.address)) - before).toBe(50_000n);
    expect(await revertName(as(fx, fx.provider).getFunction('withdraw')())).toBe('NothingToWithdraw');
  });

  it('pays a matured claim before a newer claim takes its place', async () => {
    const leaseId = await openLease(fx);
    await claimAfter(leaseId, 100n, 50_000n, 1n);
    await advance(fx, CHALLENGE_WINDOW);
    const { receipt } = await claimAfter(leaseId, 10n, 80_000n, 2n);
    expect(eventNames(fx, receipt)).toEqual(['ClaimFinalized', 'ClaimSubmitted']);
    expect(await fx.market.getFunction('earnings')(fx.provider.address)).toBe(50_000n);
    const pending = await fx.market.getFunction('getPendingClaim')(leaseId);
    expect(pending.cumulativeAmount).toBe(80_000n);
  });

  it('refuses a claim above maxRatePerSecond * elapsed', async () => {
    const leaseId = await openLease(fx);
    await advance(fx, 10n);
    const lease = await fx.market.getFunction('getLease')(leaseId);
    const periodEnd = await latestTimestamp(fx);
    const cap = MAX_RATE * (periodEnd - (lease.startedAt as bigint));
    const cp = aCheckpoint(leaseId, { cumulativeAmount: cap + 1n, periodEnd });
    expect(await revertName(as(fx, fx.provider).getFunction('claim')(cp, await sign(fx, fx.provider, cp)))).toBe('ClaimAboveCap');
    const atCap = { ...cp, cumulativeAmount: cap };
    await send(as(fx, fx.provider), 'claim', atCap, await sign(fx, fx.provider, atCap));
  });

  it('refuses a double claim and a decreasing cumulative amount, before and after finalisation', async () => {
    const leaseId = await openLease(fx);
    const { cp } = await claimAfter(leaseId, 100n, 50_000n);
    const sig = await sign(fx, fx.provider, cp);
    expect(await revertName(as(fx, fx.provider).getFunction('claim')(cp, sig))).toBe('StaleCheckpoint');
    const lower = { ...cp, seq: 2n, cumulativeAmount: 40_000n };
    expect(await revertName(as(fx, fx.provider).getFunction('claim')(lower, await sign(fx, fx.provider, lower)))).toBe('StaleCheckpoint');
    await advance(fx, CHALLENGE_WINDOW);
    await send(fx.market, 'finalizeClaim', leaseId);
    expect(await revertName(as(fx, fx.provider).getFunction('claim')(cp, sig))).toBe('StaleCheckpoint');
    expect(await fx.market.getFunction('earnings')(fx.provider.address)).toBe(50_000n);
  });

  it('refuses a period that has not ended yet', async () => {
    const leaseId = await openLease(fx);
    const cp = aCheckpoint(leaseId, { periodEnd: (await latestTimestamp(fx)) + 1_000n });
    expect(await revertName(as(fx, fx.provider).getFunction('claim')(cp, await sign(fx, fx.provider, cp)))).toBe('BadPeriodEnd');
  });

  it('refuses a checkpoint signed by someone other than the lease provider', async () => {
    const leaseId = await openLease(fx);
    await advance(fx, 100n);
    const cp = aCheckpoint(leaseId, { periodEnd: await latestTimestamp(fx) });
    expect(await revertName(as(fx, fx.otherProvider).getFunction('claim')(cp, await sign(fx, fx.otherProvider, cp)))).toBe('BadSignature');
  });

  it('pays a claim no more than the escrow', async () => {
    const leaseId = await openLease(fx, {}, 2_000n);
    await claimAfter(leaseId, 100n, 9_000n);
    await advance(fx, CHALLENGE_WINDOW);
    await send(fx.market, 'finalizeClaim', leaseId);
    expect(await fx.market.getFunction('earnings')(fx.provider.address)).toBe(2_000n);
  });
});

describe('dispute', () => {
  async function claimRecords(leaseId: bigint, records: UsageRecord[]) {
    const tree = usageTree(records);
    await advance(fx, 100n);
    const cp = aCheckpoint(leaseId, { usageRoot: tree.root, cumulativeAmount: 10_000n, periodEnd: await latestTimestamp(fx) });
    await send(as(fx, fx.provider), 'claim', cp, await sign(fx, fx.provider, cp));
    return { tree, cp };
  }

  async function startedAt(leaseId: bigint): Promise<bigint> {
    return ((await fx.market.getFunction('getLease')(leaseId)).startedAt as bigint) + 0n;
  }

  it('drops a claim whose record charges more than the rates say, and blocks further unilateral claims', async () => {
    const leaseId = await openLease(fx);
    const t0 = await startedAt(leaseId);
    const good = aRecord(leaseId, t0);
    const bad = aRecord(leaseId, t0 + 10n, { seq: 1n, amount: 999_999n });
    const { tree } = await claimRecords(leaseId, [good, bad]);
    const proof = tree.getProof(1);
    const receipt = await send(as(fx, fx.tenant), 'disputeUsage', leaseId, RATES, bad, proof);
    expect(eventNames(fx, receipt)).toEqual(['ClaimDisputed']);
    expect(await revertName(fx.market.getFunction('finalizeClaim')(leaseId))).toBe('NoPendingClaim');
    const next = aCheckpoint(leaseId, { seq: 2n, cumulativeAmount: 20_000n, periodEnd: await latestTimestamp(fx) });
    expect(await revertName(as(fx, fx.provider).getFunction('claim')(next, await sign(fx, fx.provider, next)))).toBe('LeaseIsDisputed');
    // The tenant can still agree to pay through redeem.
    await send(as(fx, fx.provider), 'redeem', next, await sign(fx, fx.provider, next), await sign(fx, fx.tenant, next));
  });

  it('drops a claim with a record outside the lease interval', async () => {
    const leaseId = await openLease(fx);
    const early = aRecord(leaseId, (await startedAt(leaseId)) - 50n);
    const { tree } = await claimRecords(leaseId, [early, aRecord(leaseId, await startedAt(leaseId))]);
    await send(as(fx, fx.tenant), 'disputeUsage', leaseId, RATES, early, tree.getProof(0));
  });

  it('drops a claim carrying a record of another lease', async () => {
    const leaseId = await openLease(fx);
    const foreign = aRecord(leaseId + 7n, await startedAt(leaseId));
    const { tree } = await claimRecords(leaseId, [foreign, aRecord(leaseId, await startedAt(leaseId))]);
    await send(as(fx, fx.tenant), 'disputeUsage', leaseId, RATES, foreign, tree.getProof(0));
  });

  it('rejects an honest record and a record not in the root', async () => {
    const leaseId = await openLease(fx);
    const good = aRecord(leaseId, await startedAt(leaseId));
    const { tree } = await claimRecords(leaseId, [good, aRecord(leaseId, (await startedAt(leaseId)) + 10n, { seq: 1n })]);
    expect(await revertName(as(fx, fx.tenant).getFunction('disputeUsage')(leaseId, RATES, good, tree.getProof(0)))).toBe('DisputeRejected');
    const invented = { ...good, amount: good.amount + 1n };
    expect(await revertName(as(fx, fx.tenant).getFunction('disputeUsage')(leaseId, RATES, invented, tree.getProof(0)))).toBe('NotInUsageRoot');
  });

  it('refuses a dispute after the challenge window', async () => {
    const leaseId = await openLease(fx);
    const bad = aRecord(leaseId, await startedAt(leaseId), { amount: 1n });
    const { tree } = await claimRecords(leaseId, [bad, aRecord(leaseId, await startedAt(leaseId), { seq: 1n })]);
    await advance(fx, CHALLENGE_WINDOW);
    expect(await revertName(as(fx, fx.tenant).getFunction('disputeUsage')(leaseId, RATES, bad, tree.getProof(0)))).toBe('ChallengeWindowOver');
    await send(fx.market, 'finalizeClaim', leaseId);
    expect(await revertName(as(fx, fx.tenant).getFunction('disputeUsage')(leaseId, RATES, bad, tree.getProof(0)))).toBe('NoPendingClaim');
  });

  it('slashes the bond to the tenant on equivocation, once', async () => {
    const leaseId = await openLease(fx);
    const a = aCheckpoint(leaseId, { seq: 3n, usageRoot: id('a') });
    const b = aCheckpoint(leaseId, { seq: 3n, usageRoot: id('b') });
    const [sigA, sigB] = [await sign(fx, fx.provider, a), await sign(fx, fx.provider, b)];
    expect(await revertName(as(fx, fx.tenant).getFunction('disputeEquivocation')(a, sigA, a, sigA))).toBe('NotEquivocation');
    const otherSeq = { ...b, seq: 4n };
    expect(
      await revertName(as(fx, fx.tenant).getFunction('disputeEquivocation')(a, sigA, otherSeq, await sign(fx, fx.provider, otherSeq))),
    ).toBe('NotEquivocation');
    const before = await balance(fx.tenant.address);
    const receipt = await send(as(fx, fx.tenant), 'disputeEquivocation', a, sigA, b, sigB);
    expect(eventNames(fx, receipt)).toContain('ProviderSlashed');
    expect((await balance(fx.tenant.address)) - before).toBe(MIN_BOND);
    const info = await fx.market.getFunction('getProvider')(fx.provider.address);
    expect(info.status).toBe(3n);
    expect(info.bond).toBe(0n);
    expect(await revertName(as(fx, fx.tenant).getFunction('disputeEquivocation')(a, sigA, b, sigB))).toBe('AlreadySlashed');
    expect(await revertName(openLease(fx))).toBe('ProviderNotActive');
  });

  it('refuses equivocation evidence the provider did not sign', async () => {
    const leaseId = await openLease(fx);
    const a = aCheckpoint(leaseId, { usageRoot: id('a') });
    const b = aCheckpoint(leaseId, { usageRoot: id('b') });
    expect(
      await revertName(
        as(fx, fx.tenant).getFunction('disputeEquivocation')(a, await sign(fx, fx.provider, a), b, await sign(fx, fx.tenant, b)),
      ),
    ).toBe('BadSignature');
  });
});

describe('closing and settling', () => {
  it('lets either side close once, and refunds the rest after the last claim is final', async () => {
    const leaseId = await openLease(fx, {}, 1_000_000n);
    expect(await revertName(as(fx, fx.other).getFunction('closeLease')(leaseId))).toBe('NotLeaseParty');
    await claimAfter(leaseId, 100n, 30_000n);
    expect(eventNames(fx, await send(as(fx, fx.tenant), 'closeLease', leaseId))).toEqual(['LeaseClosed']);
    expect(await revertName(as(fx, fx.provider).getFunction('closeLease')(leaseId))).toBe('LeaseAlreadyClosed');
    expect(await revertName(fx.market.getFunction('settleLease')(leaseId))).toBe('SettlementNotDue');
    await advance(fx, CHALLENGE_WINDOW);
    const late = aCheckpoint(leaseId, { seq: 9n, cumulativeAmount: 40_000n, periodEnd: await latestTimestamp(fx) });
    expect(await revertName(as(fx, fx.provider).getFunction('claim')(late, await sign(fx, fx.provider, late)))).toBe('ClaimTooLate');
    const before = await balance(fx.tenant.address);
    const receipt = await send(as(fx, fx.other), 'settleLease', leaseId);
    // The pending claim is finalised first, then the rest goes back.
    expect(eventNames(fx, receipt)).toEqual(['ClaimFinalized', 'LeaseSettled']);
    expect((await balance(fx.tenant.address)) - before).toBe(1_000_000n - 30_000n);
    expect(await fx.market.getFunction('earnings')(fx.provider.address)).toBe(30_000n);
    expect(await revertName(fx.market.getFunction('settleLease')(leaseId))).toBe('AlreadySettled');
  });

  it('refuses actions on a lease that does not exist', async () => {
    expect(await revertName(as(fx, fx.tenant).getFunction('closeLease')(99n))).toBe('UnknownLease');
  });
});

describe('off-chain encoding matches the contract', () => {
  it('hashes quotes and checkpoints, builds leaves and prices records the same way', async () => {
    const quote = await aQuote(fx);
    expect(await fx.market.getFunction('hashQuote')(quote)).toBe(hashQuote(fx.domain, quote));
    const cp = aCheckpoint(5n, { periodEnd: 123n });
    expect(await fx.market.getFunction('hashCheckpoint')(cp)).toBe(hashCheckpoint(fx.domain, cp));
    const records = [aRecord(1n, 1_000n), aRecord(1n, 1_010n, { seq: 1n, cpuMillis: 1n, txBytes: 1n, gpuMillis: 999n })];
    const tree = usageTree(records);
    for (const [i, record] of records.entries()) {
      expect(await fx.market.getFunction('usageLeaf')(record)).toBe(tree.leafHash(tree.at(i)!));
      const [ok, amount] = await fx.market.getFunction('tryUsageAmount')(RATES, record);
      expect(ok).toBe(true);
      expect(amount).toBe(record.amount);
    }
    const overflowing = aRecord(1n, 0n, { amount: 0n });
    const [ok] = await fx.market.getFunction('tryUsageAmount')({ ...RATES, perCpuSecond: 2n ** 255n }, overflowing);
    expect(ok).toBe(false);
  });
});

describe('reentrancy', () => {
  it('a hostile token cannot re-enter withdraw; the provider is paid once', async () => {
    const factory = new ContractFactory(hostileTokenAbi as unknown as InterfaceAbi, hostileTokenBytecode, fx.deployer);
    const hostile = (await (await factory.deploy()).waitForDeployment()) as unknown as Contract;
    const hostileAddress = await hostile.getAddress();
    const marketAddress = await deployMarketplace(fx.deployer, {
      tokenAddress: hostileAddress,
      minBond: MIN_BOND,
      challengeWindowSeconds: CHALLENGE_WINDOW,
      unbondingDelaySeconds: UNBONDING_DELAY,
    });
    const market = fx.market.attach(marketAddress) as Contract;
    const domain = { ...fx.domain, verifyingContract: marketAddress };
    for (const who of [fx.provider, fx.tenant]) {
      await send(hostile, 'mint', who.address, 1_000n * TOKEN);
      await send(hostile.connect(who) as Contract, 'approve', marketAddress, 2n ** 255n);
    }
    await send(market.connect(fx.provider) as Contract, 'registerProvider', 'x', '{}', MIN_BOND);
    const quote = await aQuote(fx);
    await send(market.connect(fx.tenant) as Contract, 'openLease', quote, await signQuote(fx.provider, domain, quote), 1_000_000n);
    const cp = aCheckpoint(1n, { cumulativeAmount: 7_000n });
    await send(market.connect(fx.provider) as Contract, 'redeem', cp, await signCheckpoint(fx.provider, domain, cp), await signCheckpoint(fx.tenant, domain, cp));
    await advance(fx, 100n);
    const claimCp = aCheckpoint(1n, { seq: 2n, cumulativeAmount: 9_000n, periodEnd: await latestTimestamp(fx) });
    await send(market.connect(fx.provider) as Contract, 'claim', claimCp, await signCheckpoint(fx.provider, domain, claimCp));
    await advance(fx, CHALLENGE_WINDOW);
    await send(market, 'finalizeClaim', 1n);

    // Every transfer out of the marketplace calls withdraw() back, as the provider would want.
    await send(hostile, 'arm', marketAddress, market.interface.encodeFunctionData('withdraw', []));
    const before = (await hostile.getFunction('balanceOf')(fx.provider.address)) as bigint;
    await send(market.connect(fx.provider) as Contract, 'withdraw');
    expect(((await hostile.getFunction('balanceOf')(fx.provider.address)) as bigint) - before).toBe(2_000n);
    expect(await hostile.getFunction('reentered')()).toBe(true);
    expect(await hostile.getFunction('reentrySucceeded')()).toBe(false);
    const guardSelector = id('ReentrancyGuardReentrantCall()').slice(0, 10);
    expect(await hostile.getFunction('reentryError')()).toBe(guardSelector);
    expect(await revertName(market.connect(fx.provider).getFunction('withdraw')())).toBe('NothingToWithdraw');
  });
});

describe('dispute evidence', () => {
  it('refuses rates other than the lease was opened with', async () => {
    const leaseId = await openLease(fx);
    const t0 = ((await fx.market.getFunction('getLease')(leaseId)).startedAt as bigint) + 0n;
    const record = aRecord(leaseId, t0, { amount: 1n });
    const tree = usageTree([record, aRecord(leaseId, t0, { seq: 1n })]);
    await advance(fx, 100n);
    const cp = aCheckpoint(leaseId, { usageRoot: tree.root, cumulativeAmount: 10_000n, periodEnd: await latestTimestamp(fx) });
    await send(as(fx, fx.provider), 'claim', cp, await sign(fx, fx.provider, cp));
    const forged = { ...RATES, perSecond: 0n, perCpuSecond: 0n, perGpuSecond: 0n, perGiBEgress: 0n };
    expect(await revertName(as(fx, fx.tenant).getFunction('disputeUsage')(leaseId, forged, record, tree.getProof(0)))).toBe('RatesMismatch');
  });
});
