import { Contract, ContractFactory, id, type InterfaceAbi } from 'ethers';
import {
  ceilingRate,
  checkpointOf,
  deployMarketplace,
  hashCheckpoint,
  hashQuote,
  hashTerms,
  latePayableTo,
  leaseIdOf,
  signCheckpoint,
  signQuote,
  usageLeaf,
  type Checkpoint,
} from '../../../../src/chain';
import { hostileTokenAbi, hostileTokenBytecode } from '../../../fixtures/contracts/hostile-token';
import { advance, CHALLENGE_WINDOW, latestTimestamp, MIN_BOND, TOKEN, UNBONDING_DELAY } from '../fixture';
import {
  aQuoteV2,
  balanceOf,
  claimV2,
  honestRecords,
  LATE_WINDOW,
  openV2,
  registerV2,
  revertOf,
  send,
  signedCheckpoint,
  startDualFixture,
  stopDualFixture,
  v2As,
  v2Events,
  type DualFixture,
  type OpenedV2,
} from './fixture-v2';

jest.setTimeout(120_000);

let fx: DualFixture;
let snapshot: string;

beforeAll(async () => {
  fx = await startDualFixture();
  await registerV2(fx);
});
afterAll(async () => {
  await stopDualFixture(fx);
});
beforeEach(async () => {
  snapshot = (await fx.rpc.send('evm_snapshot', [])) as string;
});
afterEach(async () => {
  await fx.rpc.send('evm_revert', [snapshot]);
});

const DEPOSIT = 10n ** 15n;

async function lease(leaseId: bigint) {
  const l = await fx.v2.getFunction('getLease')(leaseId);
  return { termsHash: l.termsHash as string, paid: l.paid as bigint, pending: l.pending as bigint, payableAt: l.payableAt as bigint, end: l.end as bigint, claimDigest: l.claimDigest as string };
}

async function provider(address = fx.provider.address) {
  const p = await fx.v2.getFunction('getProvider')(address);
  return { status: p.status as bigint, bond: p.bond as bigint, payout: p.payout as string, earnings: p.earnings as bigint, busyUntil: p.busyUntil as bigint };
}

async function countersigned(opened: OpenedV2, cp: Checkpoint) {
  return [opened.terms, cp, await signCheckpoint(fx.provider, fx.v2Domain, cp), await signCheckpoint(fx.tenant, fx.v2Domain, cp)] as const;
}

describe('provider registry', () => {
  it('registers with a bond and a payout address, once', async () => {
    const receipt = await send(v2As(fx, fx.otherProvider), 'registerProvider', 'https://b.example', '{}', MIN_BOND, fx.other.address);
    expect(v2Events(fx, receipt)).toEqual(['ProviderRegistered']);
    expect(await provider(fx.otherProvider.address)).toMatchObject({ status: 1n, bond: MIN_BOND, payout: fx.other.address });
    expect(await revertOf(v2As(fx, fx.otherProvider).getFunction('registerProvider')('x', '{}', MIN_BOND, fx.other.address))).toBe('AlreadyRegistered');
  });

  it('refuses a bond below the minimum and a zero payout address', async () => {
    expect(await revertOf(v2As(fx, fx.otherProvider).getFunction('registerProvider')('x', '{}', MIN_BOND - 1n, fx.other.address))).toBe('BondTooLow');
    expect(await revertOf(v2As(fx, fx.otherProvider).getFunction('registerProvider')('x', '{}', MIN_BOND, '0x' + '00'.repeat(20)))).toBe('InvalidPayout');
  });

  it('lets only the payout address move the payout: the provider\'s hot key cannot', async () => {
    expect(await revertOf(v2As(fx, fx.provider).getFunction('setPayout')(fx.provider.address, fx.provider.address))).toBe('NotPayout');
    expect(v2Events(fx, await send(v2As(fx, fx.payout), 'setPayout', fx.provider.address, fx.other.address))).toEqual(['PayoutChanged']);
    expect((await provider()).payout).toBe(fx.other.address);
    expect(await revertOf(v2As(fx, fx.payout).getFunction('setPayout')(fx.provider.address, fx.payout.address))).toBe('NotPayout');
  });

  it('updates, unbonds, takes no lease while unbonding, and returns the bond to the payout once no lease can be claimed', async () => {
    expect(v2Events(fx, await send(v2As(fx, fx.provider), 'updateProvider', 'https://new.example', '{"gpus":1}'))).toEqual(['ProviderUpdated']);
    await openV2(fx, { quote: { maxDuration: 10n * 86_400n } });
    await send(v2As(fx, fx.provider), 'unregister');
    expect(await revertOf(openV2(fx))).toBe('ProviderNotActive');
    await advance(fx, UNBONDING_DELAY);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('withdrawBond')())).toBe('BondLocked');
    await advance(fx, 3n * 86_400n + 2n * CHALLENGE_WINDOW + LATE_WINDOW);
    const before = await Promise.all([balanceOf(fx, fx.payout.address), balanceOf(fx, fx.provider.address)]);
    expect(v2Events(fx, await send(v2As(fx, fx.provider), 'withdrawBond'))).toEqual(['BondWithdrawn']);
    expect((await balanceOf(fx, fx.payout.address)) - before[0]!).toBe(MIN_BOND);
    expect(await balanceOf(fx, fx.provider.address)).toBe(before[1]);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('withdrawBond')())).toBe('NotUnbonding');
  });
});

describe('openLease', () => {
  it('escrows the deposit under an id made of the provider and the nonce, keeps three slots, and announces the terms and the manifest', async () => {
    const quote = await aQuoteV2(fx);
    const before = await balanceOf(fx, await fx.v2.getAddress());
    const receipt = await send(v2As(fx, fx.tenant), 'openLease', quote, await signQuote(fx.provider, fx.v2Domain, quote), 5_000n);
    const opened = receipt.logs.map((l) => fx.v2.interface.parseLog(l)).find((e) => e?.name === 'LeaseOpened')!;
    const leaseId = opened.args.getValue('leaseId') as bigint;
    expect(leaseId).toBe(leaseIdOf(fx.provider.address, quote.nonce));
    expect(opened.args.getValue('manifestHash')).toBe(quote.manifestHash);
    expect((await balanceOf(fx, await fx.v2.getAddress())) - before).toBe(5_000n);
    const block = await fx.rpc.getBlock(receipt.blockNumber);
    const terms = { provider: fx.provider.address, tenant: fx.tenant.address, startedAt: BigInt(block!.timestamp), deposit: 5_000n, rates: quote.rates, allocation: quote.allocation };
    expect(await lease(leaseId)).toEqual({ termsHash: hashTerms(terms), paid: 0n, pending: 0n, payableAt: 0n, end: terms.startedAt + quote.maxDuration, claimDigest: `0x${'00'.repeat(32)}` });
  });

  it('refuses a replayed quote, another tenant, an expired quote, a forged or altered signature', async () => {
    const quote = await aQuoteV2(fx);
    const sig = await signQuote(fx.provider, fx.v2Domain, quote);
    await send(v2As(fx, fx.tenant), 'openLease', quote, sig, 1_000n);
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('openLease')(quote, sig, 1_000n))).toBe('QuoteAlreadyUsed');
    const fresh = await aQuoteV2(fx);
    const freshSig = await signQuote(fx.provider, fx.v2Domain, fresh);
    expect(await revertOf(v2As(fx, fx.other).getFunction('openLease')(fresh, freshSig, 1_000n))).toBe('NotTenant');
    const cheaper = { ...fresh, allocation: { ...fresh.allocation, egressBytesPerSecond: 1n } };
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('openLease')(cheaper, freshSig, 1_000n))).toBe('BadSignature');
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('openLease')(fresh, await signQuote(fx.tenant, fx.v2Domain, fresh), 1_000n))).toBe('BadSignature');
    await advance(fx, 301n);
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('openLease')(fresh, freshSig, 1_000n))).toBe('QuoteExpired');
  });

  it('refuses a zero deposit, a zero duration, and rates whose ceiling cannot be computed', async () => {
    expect(await revertOf(openV2(fx, { deposit: 0n }))).toBe('BadDeposit');
    expect(await revertOf(openV2(fx, { quote: { maxDuration: 0n } }))).toBe('InvalidQuote');
    const huge = { perSecond: 2n ** 255n, perCpuSecond: 0n, perGpuSecond: 0n, perGiBEgress: 0n };
    expect(await revertOf(openV2(fx, { quote: { rates: huge } }))).toBe('InvalidQuote');
  });

  it('checks the terms every later call passes against the hash it keeps', async () => {
    const opened = await openV2(fx);
    const richer = { ...opened.terms, deposit: opened.terms.deposit * 2n };
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('closeLease')(opened.leaseId, richer))).toBe('TermsMismatch');
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('closeLease')(opened.leaseId + 1n, opened.terms))).toBe('UnknownLease');
  });
});

describe('the honest path', () => {
  it('opens, redeems, claims, finalises, closes, settles, and withdraws to the payout address', async () => {
    const opened = await openV2(fx, { deposit: DEPOSIT });
    const records = honestRecords(opened.leaseId, opened.terms, 4);
    await advance(fx, 240n);
    const redeemed = await send(v2As(fx, fx.other), 'redeem', ...(await countersigned(opened, checkpointOf(opened.leaseId, records.slice(0, 2)))));
    expect(v2Events(fx, redeemed)).toEqual(['CheckpointRedeemed']);
    expect((await provider()).earnings).toBe(records[1]!.total);

    const { receipt } = await claimV2(fx, opened, records);
    expect(v2Events(fx, receipt)).toEqual(['ClaimSubmitted']);
    expect(await revertOf(fx.v2.getFunction('finalizeClaim')(opened.leaseId))).toBe('ChallengeWindowOpen');
    await advance(fx, CHALLENGE_WINDOW);
    expect(v2Events(fx, await send(v2As(fx, fx.other), 'finalizeClaim', opened.leaseId))).toEqual(['ClaimFinalized']);
    expect(await lease(opened.leaseId)).toMatchObject({ paid: records[3]!.total, pending: 0n, payableAt: 0n });

    const before = await Promise.all([balanceOf(fx, fx.payout.address), balanceOf(fx, fx.provider.address), balanceOf(fx, fx.tenant.address)]);
    expect(v2Events(fx, await send(v2As(fx, fx.provider), 'withdraw'))).toEqual(['Withdrawn']);
    expect((await balanceOf(fx, fx.payout.address)) - before[0]!).toBe(records[3]!.total);
    expect(await balanceOf(fx, fx.provider.address)).toBe(before[1]);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('withdraw')())).toBe('NothingToWithdraw');

    expect(v2Events(fx, await send(v2As(fx, fx.tenant), 'closeLease', opened.leaseId, opened.terms))).toEqual(['LeaseClosed']);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('closeLease')(opened.leaseId, opened.terms))).toBe('LeaseEnded');
    expect(await revertOf(v2As(fx, fx.provider).getFunction('settleLease')(opened.leaseId, opened.terms))).toBe('SettlementNotDue');
    await advance(fx, CHALLENGE_WINDOW);
    expect(v2Events(fx, await send(v2As(fx, fx.provider), 'settleLease', opened.leaseId, opened.terms))).toEqual(['LeaseSettled']);
    expect((await balanceOf(fx, fx.tenant.address)) - before[2]!).toBe(DEPOSIT - records[3]!.total);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('settleLease')(opened.leaseId, opened.terms))).toBe('AlreadySettled');
  });
});

describe('redeem', () => {
  it('credits the increase at once and refuses a checkpoint that does not raise what was paid', async () => {
    const opened = await openV2(fx);
    const records = honestRecords(opened.leaseId, opened.terms, 3);
    const args = await countersigned(opened, checkpointOf(opened.leaseId, records.slice(0, 2)));
    await send(v2As(fx, fx.other), 'redeem', ...args);
    expect(await revertOf(v2As(fx, fx.other).getFunction('redeem')(...args))).toBe('StaleCheckpoint');
    await send(v2As(fx, fx.other), 'redeem', ...(await countersigned(opened, checkpointOf(opened.leaseId, records))));
    expect((await provider()).earnings).toBe(records[2]!.total);
  });

  it('needs the tenant\'s countersignature', async () => {
    const opened = await openV2(fx);
    const cp = checkpointOf(opened.leaseId, honestRecords(opened.leaseId, opened.terms, 1));
    const providerSig = await signCheckpoint(fx.provider, fx.v2Domain, cp);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('redeem')(opened.terms, cp, providerSig, providerSig))).toBe('BadSignature');
  });

  it('pays no more than the deposit, then nothing', async () => {
    const opened = await openV2(fx, { deposit: 1_000n });
    const records = honestRecords(opened.leaseId, opened.terms, 2);
    await send(v2As(fx, fx.other), 'redeem', ...(await countersigned(opened, checkpointOf(opened.leaseId, records.slice(0, 1)))));
    expect((await provider()).earnings).toBe(1_000n);
    expect(await revertOf(v2As(fx, fx.other).getFunction('redeem')(...(await countersigned(opened, checkpointOf(opened.leaseId, records)))))).toBe('EscrowExhausted');
  });

  it('drops a pending claim it covers', async () => {
    const opened = await openV2(fx);
    const records = honestRecords(opened.leaseId, opened.terms, 3);
    await claimV2(fx, opened, records.slice(0, 2));
    await send(v2As(fx, fx.other), 'redeem', ...(await countersigned(opened, checkpointOf(opened.leaseId, records))));
    expect(await lease(opened.leaseId)).toMatchObject({ paid: records[2]!.total, pending: 0n, payableAt: 0n });
    expect(await revertOf(fx.v2.getFunction('finalizeClaim')(opened.leaseId))).toBe('NoPendingClaim');
  });
});

describe('claim', () => {
  it('is the provider\'s alone, and must claim more than is paid or pending', async () => {
    const opened = await openV2(fx);
    const records = honestRecords(opened.leaseId, opened.terms, 2);
    const { signed } = await claimV2(fx, opened, records);
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('claim')(opened.terms, signed.checkpoint, signed.signature))).toBe('NotProvider');
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(opened.terms, signed.checkpoint, signed.signature))).toBe('StaleCheckpoint');
    const shorter = await signedCheckpoint(fx, opened.leaseId, records.slice(0, 1));
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(opened.terms, shorter.checkpoint, shorter.signature))).toBe('StaleCheckpoint');
  });

  it('refuses an empty checkpoint and a period that has not ended or lies outside the lease', async () => {
    const opened = await openV2(fx);
    const records = honestRecords(opened.leaseId, opened.terms, 1);
    const empty = await signedCheckpoint(fx, opened.leaseId, records, { recordCount: 0n });
    await advance(fx, 60n);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(opened.terms, empty.checkpoint, empty.signature))).toBe('EmptyCheckpoint');
    const future = await signedCheckpoint(fx, opened.leaseId, records, { periodEnd: (await latestTimestamp(fx)) + 1_000n });
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(opened.terms, future.checkpoint, future.signature))).toBe('BadPeriodEnd');
    const atStart = await signedCheckpoint(fx, opened.leaseId, records, { periodEnd: opened.terms.startedAt });
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(opened.terms, atStart.checkpoint, atStart.signature))).toBe('BadPeriodEnd');
  });

  it('pays a matured claim before a newer claim takes its place', async () => {
    const opened = await openV2(fx);
    const records = honestRecords(opened.leaseId, opened.terms, 3);
    await claimV2(fx, opened, records.slice(0, 1));
    await advance(fx, CHALLENGE_WINDOW);
    const { receipt } = await claimV2(fx, opened, records);
    expect(v2Events(fx, receipt)).toEqual(['ClaimFinalized', 'ClaimSubmitted']);
    expect(await lease(opened.leaseId)).toMatchObject({ paid: records[0]!.total, pending: records[2]!.total });
  });

  it('pays a claim no more than the deposit, and refuses one above what the allocation allows', async () => {
    const opened = await openV2(fx, { deposit: 2_000n });
    const records = honestRecords(opened.leaseId, opened.terms, 2);
    await claimV2(fx, opened, records);
    expect((await lease(opened.leaseId)).pending).toBe(2_000n);
    const other = await openV2(fx);
    const cap = ceilingRate(other.terms.rates, other.terms.allocation) * 60n;
    const over = await signedCheckpoint(fx, other.leaseId, honestRecords(other.leaseId, other.terms, 1), { cumulativeAmount: cap + 1n });
    await advance(fx, 60n);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(other.terms, over.checkpoint, over.signature))).toBe('ClaimAboveCap');
  });
});

describe('late claims and settling', () => {
  it('pays a late claim 90% of what it adds, refuses one after the late window, and lets the tenant settle only then', async () => {
    const opened = await openV2(fx, { quote: { maxDuration: 600n } });
    const records = honestRecords(opened.leaseId, opened.terms, 10);
    await claimV2(fx, opened, records.slice(0, 5));
    await advance(fx, 600n + CHALLENGE_WINDOW);
    const signed = await signedCheckpoint(fx, opened.leaseId, records);
    const receipt = await send(v2As(fx, fx.provider), 'claim', opened.terms, signed.checkpoint, signed.signature);
    const submitted = receipt.logs.map((l) => fx.v2.interface.parseLog(l)).find((e) => e?.name === 'ClaimSubmitted')!;
    expect(submitted.args.getValue('late')).toBe(true);
    expect(submitted.args.getValue('payableTo')).toBe(latePayableTo(records[4]!.total, records[9]!.total));
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('settleLease')(opened.leaseId, opened.terms))).toBe('SettlementNotDue');
    await advance(fx, LATE_WINDOW);
    const tenantBefore = await balanceOf(fx, fx.tenant.address);
    const settled = await send(v2As(fx, fx.tenant), 'settleLease', opened.leaseId, opened.terms);
    expect(v2Events(fx, settled)).toEqual(['ClaimFinalized', 'LeaseSettled']);
    const paid = latePayableTo(records[4]!.total, records[9]!.total);
    expect((await balanceOf(fx, fx.tenant.address)) - tenantBefore).toBe(opened.terms.deposit - paid);
    expect((await provider()).earnings).toBe(paid);
  });

  it('refuses a claim after the late window', async () => {
    const opened = await openV2(fx, { quote: { maxDuration: 600n } });
    await advance(fx, 600n + CHALLENGE_WINDOW + LATE_WINDOW);
    const signed = await signedCheckpoint(fx, opened.leaseId, honestRecords(opened.leaseId, opened.terms, 2));
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(opened.terms, signed.checkpoint, signed.signature))).toBe('ClaimTooLate');
  });

  it('waits for a pending claim to mature before settling', async () => {
    const opened = await openV2(fx, { quote: { maxDuration: 600n } });
    await advance(fx, 600n + CHALLENGE_WINDOW - 10n);
    await claimV2(fx, opened, honestRecords(opened.leaseId, opened.terms, 2));
    await advance(fx, 20n);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('settleLease')(opened.leaseId, opened.terms))).toBe('ClaimPending');
  });
});

describe('off-chain encoding matches the contract', () => {
  it('hashes quotes, checkpoints and terms, derives lease ids, builds leaves and prices records the same way', async () => {
    const quote = await aQuoteV2(fx);
    expect(await fx.v2.getFunction('hashQuote')(quote)).toBe(hashQuote(fx.v2Domain, quote));
    const opened = await openV2(fx);
    expect(await fx.v2.getFunction('hashTerms')(opened.terms)).toBe(hashTerms(opened.terms));
    expect(await fx.v2.getFunction('ceilingRate')(opened.terms)).toBe(ceilingRate(opened.terms.rates, opened.terms.allocation));
    expect(await fx.v2.getFunction('providerOf')(opened.leaseId)).toBe(fx.provider.address);
    const records = honestRecords(opened.leaseId, opened.terms, 3);
    const cp = { ...checkpointOf(opened.leaseId, records), resultDigest: id('result') };
    expect(await fx.v2.getFunction('hashCheckpoint')(cp)).toBe(hashCheckpoint(fx.v2Domain, cp));
    for (const record of records) {
      expect(await fx.v2.getFunction('usageLeaf')(record)).toBe(usageLeaf(record));
      expect([...(await fx.v2.getFunction('usageAmount')(opened.terms.rates, record))]).toEqual([true, record.amount]);
    }
  });
});

describe('reentrancy', () => {
  it('a hostile token cannot re-enter withdraw; the payout is paid once', async () => {
    const factory = new ContractFactory(hostileTokenAbi as unknown as InterfaceAbi, hostileTokenBytecode, fx.deployer);
    const hostile = (await (await factory.deploy()).waitForDeployment()) as unknown as Contract;
    const address = await deployMarketplace(fx.deployer, {
      tokenAddress: await hostile.getAddress(),
      treasury: fx.treasury,
      minBond: MIN_BOND,
      challengeWindowSeconds: CHALLENGE_WINDOW,
      lateWindowSeconds: LATE_WINDOW,
      unbondingDelaySeconds: UNBONDING_DELAY,
    });
    const market = fx.v2.attach(address) as Contract;
    const domain = { ...fx.v2Domain, verifyingContract: address };
    for (const who of [fx.provider, fx.tenant]) {
      await send(hostile, 'mint', who.address, 1_000n * TOKEN);
      await send(hostile.connect(who) as Contract, 'approve', address, 2n ** 255n);
    }
    await send(market.connect(fx.provider) as Contract, 'registerProvider', 'x', '{}', MIN_BOND, fx.payout.address);
    const quote = await aQuoteV2(fx);
    const receipt = await send(market.connect(fx.tenant) as Contract, 'openLease', quote, await signQuote(fx.provider, domain, quote), 1_000_000n);
    const opened = receipt.logs.map((l) => market.interface.parseLog(l)).find((e) => e?.name === 'LeaseOpened')!;
    const leaseId = opened.args.getValue('leaseId') as bigint;
    const startedAt = BigInt((await fx.rpc.getBlock(receipt.blockNumber))!.timestamp);
    const terms = { provider: fx.provider.address, tenant: fx.tenant.address, startedAt, deposit: 1_000_000n, rates: quote.rates, allocation: quote.allocation };
    const cp = { ...checkpointOf(leaseId, honestRecords(leaseId, terms, 1)), cumulativeAmount: 7_000n };
    await send(market.connect(fx.other) as Contract, 'redeem', terms, cp, await signCheckpoint(fx.provider, domain, cp), await signCheckpoint(fx.tenant, domain, cp));

    await send(hostile, 'arm', address, market.interface.encodeFunctionData('withdraw', []));
    await send(market.connect(fx.provider) as Contract, 'withdraw');
    expect(await hostile.getFunction('balanceOf')(fx.payout.address)).toBe(7_000n);
    expect(await hostile.getFunction('reentered')()).toBe(true);
    expect(await hostile.getFunction('reentrySucceeded')()).toBe(false);
    expect(await hostile.getFunction('reentryError')()).toBe(id('ReentrancyGuardReentrantCall()').slice(0, 10));
  });
});
