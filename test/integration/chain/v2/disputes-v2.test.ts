import { id, type TransactionReceipt } from 'ethers';
import {
  ceilingRate,
  checkpointOf,
  COMPENSATION_BPS,
  FAULTS,
  FINDER_REWARD_BPS,
  nextRecord,
  type Checkpoint,
  type LeaseTerms,
  type UsageRecord,
} from '../../../../src/chain';
import { advance, CHALLENGE_WINDOW, MIN_BOND } from '../fixture';
import {
  balanceOf,
  claimV2,
  honestRecords,
  honestUsage,
  openV2,
  proven,
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

function faultOf(receipt: TransactionReceipt): string {
  const disputed = receipt.logs.map((l) => fx.v2.interface.parseLog(l)).find((e) => e?.name === 'ClaimDisputed');
  if (!disputed) throw new Error('no ClaimDisputed');
  return FAULTS[Number(disputed.args.getValue('fault'))]!;
}

async function providerStatus(): Promise<bigint> {
  return ((await fx.v2.getFunction('getProvider')(fx.provider.address)).status as bigint) + 0n;
}

/** Record i measured again over [t0, t0 + seconds], repriced; the totals after it follow. */
function remeter(records: UsageRecord[], terms: LeaseTerms, i: number, t0: bigint, seconds: bigint): UsageRecord[] {
  const out = records.slice(0, i);
  out.push(nextRecord(records[i]!.leaseId, out[i - 1], terms.rates, honestUsage(terms, t0, seconds)));
  for (const r of records.slice(i + 1)) out.push({ ...r, total: out[out.length - 1]!.total + r.amount });
  return out;
}

/** The totals from record i on moved by `delta`, as a provider that adds a charge out of nowhere would. */
function inflateFrom(records: UsageRecord[], i: number, delta: bigint): UsageRecord[] {
  return records.map((r, j) => (j >= i ? { ...r, total: r.total + delta } : r));
}

interface Claimed {
  opened: OpenedV2;
  tree: UsageRecord[];
  cp: Checkpoint;
}

/** Opens a lease and claims a checkpoint over the leaves `build` gives (its count, total and end unless overridden). */
async function claimed(build: (leaseId: bigint, terms: LeaseTerms) => { leaves: UsageRecord[]; checkpoint?: Partial<Checkpoint> }): Promise<Claimed> {
  const opened = await openV2(fx, { deposit: DEPOSIT });
  const { leaves, checkpoint } = build(opened.leaseId, opened.terms);
  const { signed } = await claimV2(fx, opened, leaves, checkpoint);
  return { opened, tree: leaves, cp: signed.checkpoint };
}

function disputeRecord(c: Claimed, i: number, from = fx.tenant): Promise<TransactionReceipt> {
  return send(v2As(fx, from), 'disputeRecord', c.opened.terms, c.cp, proven(c.tree, i));
}

function disputePair(c: Claimed, i: number, j: number): Promise<TransactionReceipt> {
  return send(v2As(fx, fx.tenant), 'disputeRecordPair', c.opened.terms, c.cp, proven(c.tree, i), proven(c.tree, j));
}

describe('an honest provider\'s records', () => {
  it('are never disputable, one by one or two by two, and the claim pays exactly their total', async () => {
    const c = await claimed((leaseId, terms) => ({ leaves: honestRecords(leaseId, terms, 4) }));
    for (let i = 0; i < 4; i += 1) {
      expect(await revertOf(disputeRecord(c, i))).toBe('DisputeRejected');
      for (let j = i; j < 4; j += 1) expect(await revertOf(disputePair(c, i, j))).toBe('DisputeRejected');
    }
    await advance(fx, CHALLENGE_WINDOW);
    await send(fx.v2, 'finalizeClaim', c.opened.leaseId);
    expect((await fx.v2.getFunction('getProvider')(fx.provider.address)).earnings).toBe(c.tree[3]!.total);
  });
});

type Build = (leaseId: bigint, terms: LeaseTerms) => { leaves: UsageRecord[]; checkpoint?: Partial<Checkpoint> };

/** Four honest records changed by `change`, the checkpoint over the first four leaves' count, total and end. */
function fourWith(change: (records: UsageRecord[], terms: LeaseTerms) => UsageRecord[], checkpoint: (records: UsageRecord[]) => Partial<Checkpoint> = () => ({})): Build {
  return (leaseId, terms) => {
    const leaves = change(honestRecords(leaseId, terms, 4), terms);
    const first = leaves.slice(0, 4);
    return { leaves, checkpoint: { recordCount: 4n, cumulativeAmount: first[3]!.total, periodEnd: first[3]!.t1, ...checkpoint(leaves) } };
  };
}

describe('disputeRecord upholds true evidence about one record', () => {
  const cases: [string, Build, number, string][] = [
    ['a record of another lease', fourWith((r) => r.map((x, i) => (i === 1 ? { ...x, leaseId: x.leaseId + 1n } : x))), 1, 'WrongLease'],
    ['a leaf past the record count', fourWith((r) => [...r, { ...r[3]!, index: 4n }]), 4, 'IndexOutOfRange'],
    ['an empty interval', fourWith((r) => r.map((x, i) => (i === 1 ? { ...x, t1: x.t0 } : x))), 1, 'BadInterval'],
    ['more CPU than the cores allow, priced right', fourWith((r, t) => r.map((x, i) => (i === 2 ? nextRecord(x.leaseId, r[1], t.rates, { ...honestUsage(t, x.t0, 60n), cpuMillis: t.allocation.cpuMillicores * 60n + 1n }) : x))), 2, 'OverAllocation'],
    ['more GPU time than the GPUs allow, priced right', fourWith((r, t) => r.map((x, i) => (i === 2 ? nextRecord(x.leaseId, r[1], t.rates, { ...honestUsage(t, x.t0, 60n), gpuMillis: 60_001n }) : x))), 2, 'OverAllocation'],
    ['more egress than the rate allows, priced right', fourWith((r, t) => r.map((x, i) => (i === 2 ? nextRecord(x.leaseId, r[1], t.rates, { ...honestUsage(t, x.t0, 60n), txBytes: t.allocation.egressBytesPerSecond * 60n + 1n }) : x))), 2, 'OverAllocation'],
    ['an amount off the rates', fourWith((r) => inflateFrom(r.map((x, i) => (i === 2 ? { ...x, amount: x.amount + 1n } : x)), 2, 1n)), 2, 'AmountMismatch'],
    ['a first total that is not its amount', fourWith((r) => inflateFrom(r, 0, 1n)), 0, 'TotalMismatch'],
    ['a claimed amount that is not the last total', fourWith((r) => r, (r) => ({ cumulativeAmount: r[3]!.total + 1n })), 3, 'TotalMismatch'],
    ['a period past the last record', fourWith((r) => r, (r) => ({ periodEnd: r[3]!.t1 + 1n })), 3, 'PeriodMismatch'],
  ];
  it.each(cases)('%s', async (_name, build, index, fault) => {
    const c = await claimed(build);
    const receipt = await disputeRecord(c, index);
    expect(v2Events(fx, receipt)).toEqual(['ClaimDisputed', 'ProviderSlashed']);
    expect(faultOf(receipt)).toBe(fault);
    expect(await revertOf(fx.v2.getFunction('finalizeClaim')(c.opened.leaseId))).toBe('NoPendingClaim');
    expect(await providerStatus()).toBe(3n);
  });
});

describe('disputeRecordPair upholds true evidence about two records', () => {
  const cases: [string, Build, [number, number], string][] = [
    ['a gap', fourWith((r, t) => remeter(r, t, 2, r[2]!.t0 + 1n, 59n)), [1, 2], 'NotContiguous'],
    ['an overlap', fourWith((r, t) => remeter(r, t, 2, r[2]!.t0 - 1n, 61n)), [1, 2], 'NotContiguous'],
    ['two records out of order', fourWith((r) => r.map((x, i) => (i === 1 ? { ...x, t0: r[2]!.t0, t1: r[2]!.t1 } : i === 2 ? { ...x, t0: r[1]!.t0, t1: r[1]!.t1 } : x))), [1, 2], 'NotContiguous'],
    ['a running total that does not add up', fourWith((r) => inflateFrom(r, 2, 1n)), [1, 2], 'TotalMismatch'],
    ['two versions of one record', fourWith((r) => [...r, { ...r[2]!, rxBytes: r[2]!.rxBytes + 1n }]), [2, 4], 'DuplicateIndex'],
    [
      'more charged between two records than the time between allows',
      fourWith((r, t) => inflateFrom(r, 3, ceilingRate(t.rates, t.allocation) * 120n - r[1]!.amount - r[2]!.amount + 1n)),
      [0, 3],
      'TotalMismatch',
    ],
  ];
  it.each(cases)('%s', async (_name, build, [i, j], fault) => {
    const c = await claimed(build);
    const receipt = await disputePair(c, i, j);
    expect(faultOf(receipt)).toBe(fault);
    expect(await providerStatus()).toBe(3n);
  });
});

describe('false evidence is refused', () => {
  it('a record not in the claimed root, a checkpoint that is not the pending claim, terms that are not the lease\'s', async () => {
    const c = await claimed((leaseId, terms) => ({ leaves: honestRecords(leaseId, terms, 3) }));
    const tenant = v2As(fx, fx.tenant);
    const invented = { record: { ...c.tree[1]!, amount: c.tree[1]!.amount + 1n }, proof: proven(c.tree, 1).proof };
    expect(await revertOf(tenant.getFunction('disputeRecord')(c.opened.terms, c.cp, invented))).toBe('NotInUsageRoot');
    const other = checkpointOf(c.opened.leaseId, c.tree.slice(0, 2));
    expect(await revertOf(tenant.getFunction('disputeRecord')(c.opened.terms, other, proven(c.tree.slice(0, 2), 1)))).toBe('NotPendingClaim');
    const free = { ...c.opened.terms, rates: { perSecond: 0n, perCpuSecond: 0n, perGpuSecond: 0n, perGiBEgress: 0n } };
    expect(await revertOf(tenant.getFunction('disputeRecord')(free, c.cp, proven(c.tree, 1)))).toBe('TermsMismatch');
  });

  it('evidence after the challenge window, or with no claim pending', async () => {
    const c = await claimed(fourWith((r) => inflateFrom(r, 0, 1n)));
    await advance(fx, CHALLENGE_WINDOW);
    expect(await revertOf(disputeRecord(c, 0))).toBe('ChallengeWindowOver');
    await send(fx.v2, 'finalizeClaim', c.opened.leaseId);
    expect(await revertOf(disputeRecord(c, 0))).toBe('NoPendingClaim');
  });
});

describe('equivocation', () => {
  async function lease() {
    const opened = await openV2(fx, { deposit: DEPOSIT });
    return { opened, records: honestRecords(opened.leaseId, opened.terms, 4) };
  }

  const conflicts: [string, (r: UsageRecord[], t: LeaseTerms) => [UsageRecord[], Partial<Checkpoint>, UsageRecord[], Partial<Checkpoint>]][] = [
    ['one prefix, two roots', (r) => [r.slice(0, 2), {}, r.slice(0, 2), { usageRoot: id('other') }]],
    ['one prefix, two amounts', (r) => [r.slice(0, 2), {}, r.slice(0, 2), { cumulativeAmount: r[1]!.total + 1n }]],
    ['a longer prefix that ends no later', (r) => [r.slice(0, 2), {}, r, { periodEnd: r[1]!.t1 }]],
    ['a longer prefix that costs less', (r) => [r.slice(0, 2), {}, r, { cumulativeAmount: r[1]!.total - 1n }]],
    ['more added than the allocation allows in the time between', (r, t) => [r.slice(0, 2), {}, r, { cumulativeAmount: r[1]!.total + ceilingRate(t.rates, t.allocation) * 120n + 1n }]],
  ];

  it.each(conflicts)('slashes two checkpoints that cannot both be true: %s', async (_name, make) => {
    const { opened, records } = await lease();
    const [ra, oa, rb, ob] = make(records, opened.terms);
    const a = await signedCheckpoint(fx, opened.leaseId, ra, oa);
    const b = await signedCheckpoint(fx, opened.leaseId, rb, ob);
    expect(v2Events(fx, await send(v2As(fx, fx.tenant), 'disputeEquivocation', opened.terms, a, b))).toEqual(['ProviderSlashed']);
    expect(await revertOf(v2As(fx, fx.tenant).getFunction('disputeEquivocation')(opened.terms, a, b))).toBe('AlreadySlashed');
  });

  it('slashes two signed roots holding different records at one index (a period metered twice), and drops the pending claim', async () => {
    const { opened, records } = await lease();
    const remetered = remeter(records, opened.terms, 1, records[1]!.t0, 60n).map((r, i) => (i === 1 ? { ...r, rxBytes: r.rxBytes + 1n } : r));
    const a = await signedCheckpoint(fx, opened.leaseId, records.slice(0, 2));
    const { signed: b } = await claimV2(fx, opened, remetered);
    const receipt = await send(v2As(fx, fx.tenant), 'disputeConflictingRecords', opened.terms, a, proven(records.slice(0, 2), 1), b, proven(remetered, 1));
    expect(v2Events(fx, receipt)).toEqual(['ClaimDisputed', 'ProviderSlashed']);
    expect(await revertOf(fx.v2.getFunction('finalizeClaim')(opened.leaseId))).toBe('NoPendingClaim');
  });

  it('refuses consistent checkpoints, one record twice, a record past a count, another lease\'s checkpoint, and a signature not the provider\'s', async () => {
    const { opened, records } = await lease();
    const tenant = v2As(fx, fx.tenant);
    const two = await signedCheckpoint(fx, opened.leaseId, records.slice(0, 2));
    const four = await signedCheckpoint(fx, opened.leaseId, records);
    expect(await revertOf(tenant.getFunction('disputeEquivocation')(opened.terms, two, four))).toBe('NotEquivocation');
    expect(await revertOf(tenant.getFunction('disputeConflictingRecords')(opened.terms, two, proven(records.slice(0, 2), 1), four, proven(records, 1)))).toBe('NotEquivocation');
    const extra = [...records.slice(0, 2), { ...records[2]!, rxBytes: 9n }];
    const twoWithExtra = await signedCheckpoint(fx, opened.leaseId, extra, { recordCount: 2n, cumulativeAmount: records[1]!.total, periodEnd: records[1]!.t1 });
    expect(await revertOf(tenant.getFunction('disputeConflictingRecords')(opened.terms, twoWithExtra, proven(extra, 2), four, proven(records, 2)))).toBe('NotEquivocation');
    const elsewhere = await openV2(fx);
    const foreign = await signedCheckpoint(fx, elsewhere.leaseId, honestRecords(elsewhere.leaseId, elsewhere.terms, 2), { cumulativeAmount: 1n });
    expect(await revertOf(tenant.getFunction('disputeEquivocation')(opened.terms, two, foreign))).toBe('NotEquivocation');
    const byTenant = await signedCheckpoint(fx, opened.leaseId, records.slice(0, 2), { cumulativeAmount: 1n }, fx.tenant);
    expect(await revertOf(tenant.getFunction('disputeEquivocation')(opened.terms, two, byTenant))).toBe('BadSignature');
  });
});

describe('the slashed bond', () => {
  async function equivocate(deposit: bigint, finder = fx.tenant) {
    const opened = await openV2(fx, { deposit });
    const records = honestRecords(opened.leaseId, opened.terms, 1);
    const a = await signedCheckpoint(fx, opened.leaseId, records);
    const b = await signedCheckpoint(fx, opened.leaseId, records, { usageRoot: id('b') });
    const who = [fx.tenant.address, fx.other.address, fx.treasury, fx.payout.address, fx.provider.address];
    const before = await Promise.all(who.map((w) => balanceOf(fx, w)));
    await send(v2As(fx, finder), 'disputeEquivocation', opened.terms, a, b);
    const after = await Promise.all(who.map((w) => balanceOf(fx, w)));
    const [tenant, other, treasury, payout, provider] = after.map((x, i) => x - before[i]!) as [bigint, bigint, bigint, bigint, bigint];
    return { opened, tenant, other, treasury, payout, provider };
  }
  const reward = (MIN_BOND * FINDER_REWARD_BPS) / 10_000n;
  const compensation = (MIN_BOND * COMPENSATION_BPS) / 10_000n;

  it('pays the finder its reward, the tenant up to half the bond, and the treasury the rest', async () => {
    const outcome = await equivocate(10n ** 21n, fx.other);
    expect(outcome).toMatchObject({ other: reward, tenant: compensation, treasury: MIN_BOND - reward - compensation, payout: 0n, provider: 0n });
  });

  it('compensates the tenant no more than its deposit', async () => {
    const outcome = await equivocate(1_000n);
    expect(outcome).toMatchObject({ tenant: reward + 1_000n, treasury: MIN_BOND - reward - 1_000n });
  });

  it('rewards no finder that is the provider\'s payout address', async () => {
    const outcome = await equivocate(1_000n, fx.payout);
    expect(outcome).toMatchObject({ payout: 0n, tenant: 1_000n, treasury: MIN_BOND - 1_000n });
  });

  it('bars the provider: no lease, no claim; anyone may settle its leases once the window is over', async () => {
    const { opened } = await equivocate(1_000n);
    expect(await revertOf(openV2(fx))).toBe('ProviderNotActive');
    await advance(fx, 86_400n + CHALLENGE_WINDOW);
    expect(v2Events(fx, await send(v2As(fx, fx.other), 'settleLease', opened.leaseId, opened.terms))).toEqual(['LeaseSettled']);
  });

  it('still drops a slashed provider\'s disproved claim, with no second slash', async () => {
    const c = await claimed(fourWith((r) => inflateFrom(r, 0, 1n)));
    await equivocate(1_000n);
    expect(v2Events(fx, await disputeRecord(c, 0))).toEqual(['ClaimDisputed']);
  });
});

describe('a claim over records the tenant was not served', () => {
  it('is bounded by the served records: a withheld record costs at most what the allocation allows over its time', async () => {
    const c = await claimed((leaseId, terms) => {
      const records = honestRecords(leaseId, terms, 4);
      // Record 2 is never served; the totals after it carry more than 60 s of the allocation allows.
      return { leaves: inflateFrom(records, 2, ceilingRate(terms.rates, terms.allocation) * 60n - records[2]!.amount + 1n) };
    });
    expect(faultOf(await disputePair(c, 1, 3))).toBe('TotalMismatch');
  });
});
