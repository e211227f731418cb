import { Wallet, id, type TransactionReceipt } from 'ethers';
import { deployLegacyMarketplace } from '../../../../test/fixtures/legacy-protocol';
import { signLegacyCheckpoint, signLegacyQuote, legacyUsageAmount, legacyUsageTree, type LegacyUsageRecord } from '../../../../test/fixtures/legacy-protocol';
import {
  claimCap,
  deployMarketplace,
  FAULTS,
  FINDER_REWARD_BPS,
  latePayableTo,
  nextRecord,
  type Allocation,
} from '../../../../src/chain';
import type { Rates } from '../../../../src/chain';
import { advance, aCheckpoint, aQuote, as, CHALLENGE_WINDOW, eventNames, latestTimestamp, MIN_BOND, openLease, RATES, sign, UNBONDING_DELAY } from '../fixture';
import {
  balanceOf,
  claimV2,
  honestRecords,
  inSnapshot,
  LATE_WINDOW,
  openV2,
  proven,
  rechain,
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

/**
 * The attacks, each shown working against today's Marketplace (the documented attack:
 * the overpayment, the bond returned, the forfeit happen) and refused or bounded by MarketplaceV2.
 * Attack 5 (the two off-chain halves disagreeing on a capped checkpoint) is off-chain: see
 * test/unit/chain/protocol-v2.test.ts for the amount rule that removes it.
 */

jest.setTimeout(120_000);

let fx: DualFixture;
let snapshot: string;

beforeAll(async () => {
  fx = await startDualFixture();
  await send(as(fx, fx.provider), 'registerProvider', 'https://provider.example', '{}', MIN_BOND);
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

/** The default rate card (src/config/schema.ts) for a 1-core lease with 1 GiB of memory. */
const CARD_RATES: Rates = { perSecond: 100_000_000n, perCpuSecond: 1_000_000_000n, perGpuSecond: 100_000_000_000n, perGiBEgress: 10_000_000_000_000n };
/** V1's unilateral cap as src/settlement/pricing.ts sets it: 5/4 of the core, and 1 Gbit/s of egress. */
const V1_MAX_RATE = CARD_RATES.perSecond + (CARD_RATES.perCpuSecond * 1_000n * 5n + 3_999n) / 4_000n + (CARD_RATES.perGiBEgress * 125_000_000n + 2n ** 30n - 1n) / 2n ** 30n;
/** The same lease's allocation committed on V2. */
const ONE_CORE: Allocation = { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: 125_000_000n };
const BIG_DEPOSIT = 10n ** 17n;

async function v1StartedAt(leaseId: bigint): Promise<bigint> {
  return ((await fx.market.getFunction('getLease')(leaseId)).startedAt as bigint) + 0n;
}

/** A V1 usage record of 60 s from t0, priced by `rates`. */
function v1Record(leaseId: bigint, t0: bigint, rates: Rates, usage: Partial<LegacyUsageRecord> = {}): LegacyUsageRecord {
  const base = { leaseId, seq: 0n, t0, t1: t0 + 60n, cpuMillis: 6_000n, memoryByteSeconds: 60n * 2n ** 30n, gpuMillis: 0n, rxBytes: 0n, txBytes: 100_000n, ...usage };
  return { ...base, amount: legacyUsageAmount(rates, base) };
}

async function v1Claim(by: Wallet, leaseId: bigint, cumulativeAmount: bigint, periodEnd: bigint, seq: bigint, usageRoot = id(`root-${seq}`)): Promise<TransactionReceipt> {
  const cp = aCheckpoint(leaseId, { seq, usageRoot, cumulativeAmount, periodEnd });
  return send(as(fx, by), 'claim', cp, await sign(fx, fx.provider, cp));
}

async function v1Earnings(): Promise<bigint> {
  return (await fx.market.getFunction('earnings')(fx.provider.address)) as bigint;
}

async function v2Provider(address: string = fx.provider.address): Promise<{ status: bigint; bond: bigint; earnings: bigint }> {
  const p = await fx.v2.getFunction('getProvider')(address);
  return { status: p.status as bigint, bond: p.bond as bigint, earnings: p.earnings as bigint };
}

const SLASHED = 3n;

function faultOf(receipt: TransactionReceipt): string {
  const disputed = receipt.logs.map((l) => fx.v2.interface.parseLog(l)).find((e) => e?.name === 'ClaimDisputed');
  if (!disputed) throw new Error('no ClaimDisputed');
  return FAULTS[Number(disputed.args.getValue('fault'))]!;
}

describe('attack 1: a unilateral claim takes the whole cap', () => {
  it('Marketplace pays a claim at the cap over three copies of one correctly priced record: every dispute is rejected', async () => {
    const leaseId = await openLease(fx, { rates: CARD_RATES, maxRatePerSecond: V1_MAX_RATE }, BIG_DEPOSIT);
    const record = v1Record(leaseId, await v1StartedAt(leaseId), CARD_RATES);
    const tree = legacyUsageTree([record, record, record]);
    await advance(fx, 60n);
    const cap = V1_MAX_RATE * 60n;
    await v1Claim(fx.provider, leaseId, cap, record.t1, 1n, tree.root);
    for (let i = 0; i < 3; i += 1) {
      expect(await revertOf(as(fx, fx.tenant).getFunction('disputeUsage')(leaseId, CARD_RATES, record, tree.getProof(i)))).toBe('DisputeRejected');
    }
    await advance(fx, CHALLENGE_WINDOW);
    await send(fx.market, 'finalizeClaim', leaseId);
    expect(await v1Earnings()).toBe(cap);
    expect(cap / record.amount).toBeGreaterThan(1_000n);
  });

  it('Marketplace pays a correctly priced record of 100 cores on a 1-core lease: usage is unbounded', async () => {
    const leaseId = await openLease(fx, { rates: CARD_RATES, maxRatePerSecond: V1_MAX_RATE }, BIG_DEPOSIT);
    const record = v1Record(leaseId, await v1StartedAt(leaseId), CARD_RATES, { cpuMillis: 100n * 60_000n });
    const tree = legacyUsageTree([record, { ...record, seq: 1n, t0: record.t1, t1: record.t1, cpuMillis: 0n, txBytes: 0n, amount: 0n }]);
    await advance(fx, 60n);
    await v1Claim(fx.provider, leaseId, record.amount, record.t1, 1n, tree.root);
    expect(await revertOf(as(fx, fx.tenant).getFunction('disputeUsage')(leaseId, CARD_RATES, record, tree.getProof(0)))).toBe('DisputeRejected');
    await advance(fx, CHALLENGE_WINDOW);
    await send(fx.market, 'finalizeClaim', leaseId);
    expect(await v1Earnings()).toBe(record.amount);
  });

  async function openOneCore(): Promise<OpenedV2> {
    return openV2(fx, { quote: { rates: CARD_RATES, allocation: ONE_CORE }, deposit: BIG_DEPOSIT });
  }

  function oneRecord(opened: OpenedV2, cpuMillis = 6_000n) {
    const usage = { t0: opened.terms.startedAt, t1: opened.terms.startedAt + 60n, cpuMillis, memoryByteSeconds: 60n * 2n ** 30n, gpuMillis: 0n, rxBytes: 0n, txBytes: 100_000n };
    return nextRecord(opened.leaseId, undefined, CARD_RATES, usage);
  }

  it('MarketplaceV2 disproves the same claim with the tenant\'s records: the copies overlap, and leave no time for each other', async () => {
    const opened = await openOneCore();
    const copies = rechain([oneRecord(opened), oneRecord(opened), oneRecord(opened)]);
    const cap = claimCap(opened.terms, copies[2]!.t1);
    const { signed } = await claimV2(fx, opened, copies, { cumulativeAmount: cap });
    const tenant = v2As(fx, fx.tenant);
    await inSnapshot(fx, async () => {
      const receipt = await send(tenant, 'disputeRecordPair', opened.terms, signed.checkpoint, proven(copies, 0), proven(copies, 1));
      expect(v2Events(fx, receipt)).toEqual(['ClaimDisputed', 'ProviderSlashed']);
      expect(faultOf(receipt)).toBe('NotContiguous');
    });
    // The third copy has no room for the two records before it: they last a second at least.
    expect(faultOf(await send(tenant, 'disputeRecord', opened.terms, signed.checkpoint, proven(copies, 2)))).toBe('BadInterval');
    await advance(fx, CHALLENGE_WINDOW);
    expect(await revertOf(fx.v2.getFunction('finalizeClaim')(opened.leaseId))).toBe('NoPendingClaim');
    expect(await v2Provider()).toMatchObject({ status: SLASHED, bond: 0n, earnings: 0n });
  });

  it('MarketplaceV2 refuses a claim above the allocation\'s ceiling, and disproves a correctly priced record above the allocation', async () => {
    const other = await openOneCore();
    const over = await signedCheckpoint(fx, other.leaseId, [oneRecord(other)], { cumulativeAmount: claimCap(other.terms, other.terms.startedAt + 60n) + 1n });
    await advance(fx, 60n);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(other.terms, over.checkpoint, over.signature))).toBe('ClaimAboveCap');

    const opened = await openOneCore();
    const hundredCores = oneRecord(opened, 100n * 60_000n);
    const { signed } = await claimV2(fx, opened, [hundredCores]);
    const receipt = await send(v2As(fx, fx.tenant), 'disputeRecord', opened.terms, signed.checkpoint, proven([hundredCores], 0));
    expect(faultOf(receipt)).toBe('OverAllocation');
    expect(await v2Provider()).toMatchObject({ status: SLASHED, bond: 0n });
  });
});

describe('attack 2: slashing pays the slashed', () => {
  async function conflictingV1(leaseId: bigint) {
    const a = aCheckpoint(leaseId, { seq: 1n, usageRoot: id('a') });
    const b = aCheckpoint(leaseId, { seq: 1n, usageRoot: id('b') });
    return [a, await sign(fx, fx.provider, a), b, await sign(fx, fx.provider, b)] as const;
  }

  it('Marketplace: a 1-wei self-lease returns the whole bond at once; the real tenant\'s evidence then fails and the provider keeps claiming', async () => {
    const quote = await aQuote(fx, { tenant: fx.provider.address });
    const opened = await send(as(fx, fx.provider), 'openLease', quote, await signLegacyQuote(fx.provider, fx.domain, quote), 1n);
    const self = fx.market.interface.parseLog(opened.logs.find((l) => fx.market.interface.parseLog(l)?.name === 'LeaseOpened')!)!.args.getValue('leaseId') as bigint;
    const real = await openLease(fx);
    await send(as(fx, fx.provider), 'unregister');
    expect(await revertOf(as(fx, fx.provider).getFunction('withdrawBond')())).toBe('BondLocked');

    const before = await balanceOf(fx, fx.provider.address);
    await send(as(fx, fx.provider), 'disputeEquivocation', ...(await conflictingV1(self)));
    expect((await balanceOf(fx, fx.provider.address)) - before).toBe(MIN_BOND);
    expect(await revertOf(as(fx, fx.tenant).getFunction('disputeEquivocation')(...(await conflictingV1(real))))).toBe('AlreadySlashed');

    await advance(fx, 100n);
    await v1Claim(fx.provider, real, 50_000n, await latestTimestamp(fx), 1n);
    await advance(fx, CHALLENGE_WINDOW);
    await send(fx.market, 'finalizeClaim', real);
    expect(await v1Earnings()).toBe(50_000n);
  });

  async function conflictingV2(opened: OpenedV2) {
    const records = honestRecords(opened.leaseId, opened.terms, 1);
    const a = await signedCheckpoint(fx, opened.leaseId, records);
    const b = await signedCheckpoint(fx, opened.leaseId, records, { cumulativeAmount: a.checkpoint.cumulativeAmount + 1n });
    return [a, b] as const;
  }

  async function balances(...addresses: string[]): Promise<bigint[]> {
    return Promise.all(addresses.map((address) => balanceOf(fx, address)));
  }

  it('MarketplaceV2: the self-slash returns nothing to the provider or its payout, and the provider can claim no more', async () => {
    const self = await openV2(fx, { tenant: fx.provider, deposit: 1n });
    const real = await openV2(fx);
    const records = honestRecords(real.leaseId, real.terms, 2);
    await claimV2(fx, real, records.slice(0, 1));
    await send(v2As(fx, fx.provider), 'unregister');
    expect(await revertOf(v2As(fx, fx.provider).getFunction('withdrawBond')())).toBe('BondLocked');

    const who = [fx.provider.address, fx.payout.address, fx.treasury];
    const before = await balances(...who);
    await send(v2As(fx, fx.provider), 'disputeEquivocation', self.terms, ...(await conflictingV2(self)));
    const after = await balances(...who);
    expect(after.map((b, i) => b - before[i]!)).toEqual([0n, 0n, MIN_BOND]);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('withdrawBond')())).toBe('NotUnbonding');

    const more = await signedCheckpoint(fx, real.leaseId, records);
    expect(await revertOf(v2As(fx, fx.provider).getFunction('claim')(real.terms, more.checkpoint, more.signature))).toBe('Slashed');
    await advance(fx, CHALLENGE_WINDOW);
    expect(await revertOf(fx.v2.getFunction('finalizeClaim')(real.leaseId))).toBe('Slashed');
  });

  it('MarketplaceV2: through a second address as tenant and finder, the provider recovers only the finder reward and its 1-wei deposit', async () => {
    const self = await openV2(fx, { tenant: fx.other, deposit: 1n });
    const who = [fx.other.address, fx.treasury];
    const before = await balances(...who);
    await send(v2As(fx, fx.other), 'disputeEquivocation', self.terms, ...(await conflictingV2(self)));
    const after = await balances(...who);
    const reward = (MIN_BOND * FINDER_REWARD_BPS) / 10_000n;
    expect(after.map((b, i) => b - before[i]!)).toEqual([reward + 1n, MIN_BOND - reward - 1n]);
  });
});

describe('attack 3: equivocation keyed on a seq the provider picks', () => {
  it('Marketplace: a cheat signs two contradictory checkpoints of one period under different seqs and escapes', async () => {
    const leaseId = await openLease(fx);
    const periodEnd = (await v1StartedAt(leaseId)) + 60n;
    const shown = aCheckpoint(leaseId, { seq: 1n, usageRoot: id('shown'), cumulativeAmount: 1_000n, periodEnd });
    const claimed = aCheckpoint(leaseId, { seq: 2n, usageRoot: id('claimed'), cumulativeAmount: 900_000n, periodEnd });
    const evidence = [shown, await sign(fx, fx.provider, shown), claimed, await sign(fx, fx.provider, claimed)];
    expect(await revertOf(as(fx, fx.tenant).getFunction('disputeEquivocation')(...evidence))).toBe('NotEquivocation');
  });

  it('Marketplace: an honest provider restored from a backup re-signs seq 1 over more of the same records and loses its bond', async () => {
    const leaseId = await openLease(fx);
    const t0 = await v1StartedAt(leaseId);
    const r0 = v1Record(leaseId, t0, RATES_V1);
    const r1 = v1Record(leaseId, t0 + 60n, RATES_V1, { seq: 1n });
    const before = aCheckpoint(leaseId, { seq: 1n, usageRoot: legacyUsageTree([r0]).root, cumulativeAmount: r0.amount, periodEnd: r0.t1 });
    const after = aCheckpoint(leaseId, { seq: 1n, usageRoot: legacyUsageTree([r0, r1]).root, cumulativeAmount: r0.amount + r1.amount, periodEnd: r1.t1 });
    const receipt = await send(as(fx, fx.tenant), 'disputeEquivocation', before, await sign(fx, fx.provider, before), after, await sign(fx, fx.provider, after));
    expect(eventNames(fx, receipt)).toContain('ProviderSlashed');
  });

  it('MarketplaceV2 convicts two statements about one prefix of records: there is no seq to bump', async () => {
    const opened = await openV2(fx);
    const records = honestRecords(opened.leaseId, opened.terms, 2);
    const shown = await signedCheckpoint(fx, opened.leaseId, records);
    const claimed = await signedCheckpoint(fx, opened.leaseId, records, { usageRoot: id('claimed'), cumulativeAmount: shown.checkpoint.cumulativeAmount * 9n });
    const receipt = await send(v2As(fx, fx.tenant), 'disputeEquivocation', opened.terms, shown, claimed);
    expect(v2Events(fx, receipt)).toEqual(['ProviderSlashed']);
    expect(await v2Provider()).toMatchObject({ status: SLASHED, bond: 0n });
  });

  it('MarketplaceV2 never convicts re-signing: the same content again, a longer prefix of the same records, or the same records as the final checkpoint', async () => {
    const opened = await openV2(fx);
    const records = honestRecords(opened.leaseId, opened.terms, 3);
    const first = await signedCheckpoint(fx, opened.leaseId, records.slice(0, 2));
    const restored = await signedCheckpoint(fx, opened.leaseId, records.slice(0, 2));
    const longer = await signedCheckpoint(fx, opened.leaseId, records);
    const final = await signedCheckpoint(fx, opened.leaseId, records, { resultDigest: id('result') });
    for (const [a, b] of [[first, restored], [first, longer], [restored, longer], [longer, final], [final, first]] as const) {
      expect(await revertOf(v2As(fx, fx.tenant).getFunction('disputeEquivocation')(opened.terms, a, b))).toBe('NotEquivocation');
    }
  });
});

/** The same step on either contract: the calls differ (V2 passes the lease's terms), the attack does not. */
interface Side {
  open(maxDuration?: bigint): Promise<Handle>;
  /** The provider signs a checkpoint over `seconds` of honest usage from the start; `by` submits it as a claim. */
  claim(by: Wallet, lease: Handle, seconds: bigint): Promise<TransactionReceipt>;
  payableAt(lease: Handle): Promise<bigint>;
  finalize(lease: Handle): Promise<TransactionReceipt>;
  settle(by: Wallet, lease: Handle): Promise<TransactionReceipt>;
  earnings(): Promise<bigint>;
  /** What `seconds` of honest usage from the start cost. */
  amountOf(lease: Handle, seconds: bigint): bigint;
  deployWithWindow(challengeWindow: bigint): Promise<string>;
}

interface Handle {
  leaseId: bigint;
  startedAt: bigint;
  v2?: OpenedV2;
}

const RATES_V1 = RATES;
const DEPOSIT = 1_000_000_000n;

async function untilPassed(time: bigint): Promise<void> {
  const now = await latestTimestamp(fx);
  if (time > now) await advance(fx, time - now);
}

const v1Side: Side = {
  async open(maxDuration = 86_400n) {
    const leaseId = await openLease(fx, { maxDuration }, DEPOSIT);
    return { leaseId, startedAt: await v1StartedAt(leaseId) };
  },
  async claim(by, lease, seconds) {
    const record = v1Record(lease.leaseId, lease.startedAt, RATES_V1, { t1: lease.startedAt + seconds });
    await untilPassed(record.t1);
    return v1Claim(by, lease.leaseId, record.amount, record.t1, seconds, legacyUsageTree([record]).root);
  },
  async payableAt(lease) {
    return ((await fx.market.getFunction('getPendingClaim')(lease.leaseId)).payableAt as bigint) + 0n;
  },
  finalize: (lease) => send(fx.market, 'finalizeClaim', lease.leaseId),
  settle: (by, lease) => send(as(fx, by), 'settleLease', lease.leaseId),
  earnings: v1Earnings,
  amountOf: (lease, seconds) => v1Record(lease.leaseId, lease.startedAt, RATES_V1, { t1: lease.startedAt + seconds }).amount,
  deployWithWindow: async (challengeWindow) =>
    deployLegacyMarketplace(fx.deployer, { tokenAddress: await fx.token.getAddress(), minBond: MIN_BOND, challengeWindowSeconds: challengeWindow, unbondingDelaySeconds: UNBONDING_DELAY }),
};

const v2Side: Side = {
  async open(maxDuration = 86_400n) {
    const opened = await openV2(fx, { quote: { maxDuration }, deposit: DEPOSIT });
    return { leaseId: opened.leaseId, startedAt: opened.terms.startedAt, v2: opened };
  },
  async claim(by, lease, seconds) {
    const opened = lease.v2!;
    const signed = await signedCheckpoint(fx, opened.leaseId, honestRecords(opened.leaseId, opened.terms, Number(seconds / 60n)));
    await untilPassed(signed.checkpoint.periodEnd);
    return send(v2As(fx, by), 'claim', opened.terms, signed.checkpoint, signed.signature);
  },
  async payableAt(lease) {
    return ((await fx.v2.getFunction('getLease')(lease.leaseId)).payableAt as bigint) + 0n;
  },
  finalize: (lease) => send(fx.v2, 'finalizeClaim', lease.leaseId),
  settle: (by, lease) => send(v2As(fx, by), 'settleLease', lease.leaseId, lease.v2!.terms),
  earnings: async () => (await v2Provider()).earnings,
  amountOf: (lease, seconds) => honestRecords(lease.leaseId, lease.v2!.terms, Number(seconds / 60n)).at(-1)!.total,
  deployWithWindow: async (challengeWindow) =>
    deployMarketplace(fx.deployer, {
      tokenAddress: await fx.token.getAddress(),
      treasury: fx.treasury,
      minBond: MIN_BOND,
      challengeWindowSeconds: challengeWindow,
      lateWindowSeconds: LATE_WINDOW,
      unbondingDelaySeconds: UNBONDING_DELAY,
    }),
};

/** 'ok', or the custom error the call reverted with. */
async function attempt(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch {
    return revertOf(call);
  }
}

describe.each([
  {
    contract: 'Marketplace',
    side: v1Side,
    expected: { zeroWindow: 'ok', tenantRestarts: 'ok', windowMoved: true, lateClaim: 'ClaimTooLate', tenantSettlesAtOnce: 'ok', lateEarnings: (_total: bigint) => 0n },
  },
  {
    contract: 'MarketplaceV2',
    side: v2Side,
    expected: {
      zeroWindow: 'InvalidParameter',
      tenantRestarts: 'NotProvider',
      windowMoved: false,
      lateClaim: 'ok',
      tenantSettlesAtOnce: 'SettlementNotDue',
      lateEarnings: (total: bigint) => latePayableTo(0n, total),
    },
  },
])('$contract', ({ side, expected }) => {
  it('attack 4: a claim after end + challengeWindow (v1: forfeits everything unredeemed; v2: paid, less the late penalty)', async () => {
    const lease = await side.open(600n);
    await advance(fx, 600n + CHALLENGE_WINDOW);
    expect(await attempt(side.claim(fx.provider, lease, 600n))).toBe(expected.lateClaim);
    expect(await attempt(side.settle(fx.tenant, lease))).toBe(expected.tenantSettlesAtOnce);
    await advance(fx, CHALLENGE_WINDOW);
    if (expected.lateClaim === 'ok') await side.finalize(lease);
    expect(await side.earnings()).toBe(expected.lateEarnings(side.amountOf(lease, 600n)));
    await advance(fx, LATE_WINDOW);
    await attempt(side.settle(fx.tenant, lease));
    expect(await attempt(side.settle(fx.tenant, lease))).toBe('AlreadySettled');
  });

  it('low: a challengeWindow of 0 (v1: accepted, disputes impossible; v2: refused at deploy)', async () => {
    expect(await attempt(side.deployWithWindow(0n))).toBe(expected.zeroWindow);
  });

  it('low: someone else restarts a pending claim\'s window with a newer provider-signed checkpoint (v1: yes; v2: only the provider claims)', async () => {
    const lease = await side.open();
    await side.claim(fx.provider, lease, 60n);
    const first = await side.payableAt(lease);
    await advance(fx, CHALLENGE_WINDOW - 120n);
    expect(await attempt(side.claim(fx.tenant, lease, 120n))).toBe(expected.tenantRestarts);
    expect((await side.payableAt(lease)) > first).toBe(expected.windowMoved);
  });
});

describe('low: a challengeWindow of 0 makes disputes impossible on Marketplace', () => {
  it('finalises a claim with no time to dispute it', async () => {
    const address = await v1Side.deployWithWindow(0n);
    const market = fx.market.attach(address) as typeof fx.market;
    const domain = { ...fx.domain, verifyingContract: address };
    await send(fx.token.connect(fx.tenant) as typeof fx.token, 'approve', address, 2n ** 255n);
    await send(fx.token.connect(fx.provider) as typeof fx.token, 'approve', address, 2n ** 255n);
    await send(market.connect(fx.provider) as typeof market, 'registerProvider', 'x', '{}', MIN_BOND);
    const quote = await aQuote(fx);
    await send(market.connect(fx.tenant) as typeof market, 'openLease', quote, await signLegacyQuote(fx.provider, domain, quote), DEPOSIT);
    const honest = v1Record(1n, await latestTimestamp(fx), RATES_V1);
    const wrong = { ...honest, amount: honest.amount * 10n };
    const tree = legacyUsageTree([wrong, { ...wrong, seq: 1n }]);
    await advance(fx, 60n);
    const cp = aCheckpoint(1n, { usageRoot: tree.root, cumulativeAmount: wrong.amount, periodEnd: wrong.t1 });
    await send(market.connect(fx.provider) as typeof market, 'claim', cp, await signLegacyCheckpoint(fx.provider, domain, cp));
    expect(await revertOf(market.connect(fx.tenant).getFunction('disputeUsage')(1n, RATES_V1, wrong, tree.getProof(0)))).toBe('ChallengeWindowOver');
    await send(market, 'finalizeClaim', 1n);
    expect(await market.getFunction('earnings')(fx.provider.address)).toBe(wrong.amount);
  });
});
