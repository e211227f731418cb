import { Wallet } from 'ethers';
import type { CheckpointView, UsageView } from '../../../src/api';
import { marketplaceDomain, signCheckpoint, type Checkpoint, type Fault, type LeaseTerms, type MeteredUsage, type UsageRecord } from '../../../src/chain';
import { usageProofs } from '../../../src/settlement';
import { UsageUnverifiedError, isUsageFault, verifyUsage, type UsageExpectations, type UsageFault } from '../../../src/tenant';
import { recordsOf, signedUsageView } from '../../support/usage-view';

const provider = Wallet.createRandom();
const domain = marketplaceDomain(31337, Wallet.createRandom().address);
const LEASE = 5n;
const TERMS: LeaseTerms = {
  provider: provider.address,
  tenant: Wallet.createRandom().address,
  startedAt: 100n,
  deposit: 10n ** 18n,
  rates: { perSecond: 10n, perCpuSecond: 1_000n, perGpuSecond: 0n, perGiBEgress: 1_000n },
  allocation: { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: 2n ** 28n },
};

function measured(t0: number, t1: number, overrides: Partial<MeteredUsage> = {}): MeteredUsage {
  return { t0: BigInt(t0), t1: BigInt(t1), cpuMillis: 2_000n, memoryByteSeconds: 1n, gpuMillis: 0n, rxBytes: 0n, txBytes: 2n ** 30n, ...overrides };
}

const records = (usage: MeteredUsage[]): UsageRecord[] => recordsOf(LEASE, TERMS.rates, usage);
const honest = (): UsageRecord[] => records([measured(100, 110), measured(110, 120), measured(120, 125)]);
/** Honest records with record `i` changed and nothing recomputed: what a dishonest meter signs over. */
const withRecord = (i: number, change: Partial<UsageRecord>): UsageRecord[] => honest().map((r, j) => (j === i ? { ...r, ...change } : r));

/** A view as an honest provider serves it, over whatever records it is given. */
const aView = (over: readonly UsageRecord[], checkpointAfter?: number[]): Promise<UsageView> => signedUsageView(provider, domain, LEASE, TERMS.rates, over, checkpointAfter);

/** `view` with its checkpoint `i` replaced by `change(checkpoint)`, signed by `signer`. */
async function resigned(view: UsageView, i: number, change: (cp: Checkpoint) => Checkpoint, signer = provider): Promise<UsageView> {
  const old = view.checkpoints[i] as CheckpointView;
  const checkpoint = change(old.checkpoint);
  const checkpoints = [...view.checkpoints];
  checkpoints[i] = { ...old, checkpoint, providerSignature: await signCheckpoint(signer, domain, checkpoint) };
  return { ...view, checkpoints };
}

const expectations: UsageExpectations = { domain, provider: provider.address, leaseId: LEASE, terms: TERMS };

function refusal(view: UsageView, expect = expectations): UsageUnverifiedError {
  try {
    verifyUsage(view, expect);
  } catch (err) {
    if (err instanceof UsageUnverifiedError) return err;
    throw err;
  }
  throw new Error('verifyUsage accepted the view');
}

/** The fault verifyUsage refuses `view` with; for a disputable view, also the contract's fault it found. */
function faultOf(view: UsageView, expect = expectations): UsageFault | `disputable:${Fault}` | 'none' {
  try {
    verifyUsage(view, expect);
    return 'none';
  } catch (err) {
    if (!(err instanceof UsageUnverifiedError)) throw err;
    const evidence = err.evidence;
    if (err.fault === 'disputable' && evidence?.kind === 'records' && evidence.dispute.kind !== 'missing') return `disputable:${evidence.dispute.fault}`;
    return err.fault;
  }
}

describe('verifyUsage', () => {
  it('accepts honest records under several checkpoints, each over a prefix', async () => {
    const view = await aView(honest(), [1, 2, 3]);
    const verified = verifyUsage(view, expectations);
    expect(verified.latest.seq).toBe(3);
    expect(verified.latest.checkpoint.recordCount).toBe(3n);
    expect(verified.total).toBe(honest().reduce((s, r) => s + r.amount, 0n));
    expect(verified.coveredUntil).toBe(125n);
  });

  it('accepts the exact total of records that used up the deposit: the contract, not the checkpoint, cuts the payout', async () => {
    const view = await aView(honest());
    const verified = verifyUsage(view, { ...expectations, terms: { ...TERMS, deposit: 1n } });
    expect(verified.total).toBe(honest()[2]!.total);
    expect(verified.total).toBeGreaterThan(1n);
  });

  // The protocol's dispute conditions replace the old per-field faults (seq, interval, amount,
  // cumulative): a record that breaks one is `disputable`, with the contract's fault named.
  it.each<[string, () => Promise<UsageView>, ReturnType<typeof faultOf>]>([
    ['overlapping intervals', () => aView(records([measured(100, 110), measured(105, 120)])), 'disputable:NotContiguous'],
    ['a gap between intervals', () => aView(records([measured(100, 110), measured(111, 120)])), 'disputable:NotContiguous'],
    ['an interval that ends before it starts', () => aView(withRecord(1, { t1: 109n })), 'disputable:BadInterval'],
    ['a skipped index', () => aView(withRecord(1, { index: 2n }).slice(0, 2)), 'disputable:IndexOutOfRange'],
    ['a record of another lease', () => aView(withRecord(0, { leaseId: 6n })), 'disputable:WrongLease'],
    ['a wrong amount', () => aView(withRecord(0, { amount: 1n })), 'disputable:AmountMismatch'],
    ['CPU above the allocation, priced honestly', () => aView(records([measured(100, 110, { cpuMillis: 10_001n })])), 'disputable:OverAllocation'],
    ['a running total that adds more than the record', () => aView(withRecord(2, { total: honest()[2]!.total + 1n })), 'disputable:TotalMismatch'],
    ['a period that ends after the last record', async () => resigned(await aView(honest()), 0, (cp) => ({ ...cp, periodEnd: 130n })), 'disputable:PeriodMismatch'],
    ['a covered record that was not served', async () => {
      const view = await aView(honest());
      return { ...view, records: view.records.filter((r) => r.record.index !== 1n) };
    }, 'missing-record'],
    ['no checkpoint', async () => ({ ...(await aView(honest())), checkpoints: [] }), 'no-checkpoint'],
    ['records the latest checkpoint does not cover', async () => ({ ...(await aView(honest(), [2])), records: usageProofs(honest()) }), 'proof'],
    ['a longer checkpoint whose cumulative amount goes down', async () => {
      const view = await aView(honest(), [2, 3]);
      return resigned(view, 1, (cp) => ({ ...cp, cumulativeAmount: view.checkpoints[0]!.checkpoint.cumulativeAmount - 1n }));
    }, 'equivocation'],
    ['two checkpoints over the same records with different totals', async () => {
      const view = await aView(honest(), [3, 3]);
      return resigned(view, 0, (cp) => ({ ...cp, cumulativeAmount: cp.cumulativeAmount + 1n }));
    }, 'equivocation'],
    ['a checkpoint signed by someone else', async () => resigned(await aView(honest()), 0, (cp) => cp, Wallet.createRandom()), 'checkpoint-signature'],
    ['a checkpoint of another lease', async () => resigned(await aView(honest()), 0, (cp) => ({ ...cp, leaseId: 6n })), 'wrong-lease'],
    ['a view of another lease', async () => ({ ...(await aView(honest())), leaseId: '6' }), 'wrong-lease'],
    ['rates other than the lease was opened with', async () => ({ ...(await aView(honest())), rates: { ...TERMS.rates, perSecond: 11n } }), 'rates'],
  ])('rejects %s', async (_name, build, fault) => {
    expect(faultOf(await build())).toBe(fault);
  });

  it('rejects a view when the chain paid more than its latest checkpoint, or the lease is another provider\'s', async () => {
    const view = await aView(honest());
    const paid = honest()[2]!.total + 1n;
    const chain = { terms: TERMS, end: 200n, paid, pending: 0n, payableAt: 0n, claimDigest: `0x${'0'.repeat(64)}` };
    expect(faultOf(view, { ...expectations, chain })).toBe('chain-mismatch');
    expect(faultOf(view, { ...expectations, terms: { ...TERMS, provider: Wallet.createRandom().address } })).toBe('chain-mismatch');
  });

  it('carries the evidence a dispute files: the record and the checkpoint it disproves, or both conflicting checkpoints', async () => {
    const bad = await aView(withRecord(0, { amount: 1n }));
    const err = refusal(bad);
    expect(isUsageFault(err, 'disputable')).toBe(true);
    expect(err.evidence).toEqual({
      kind: 'records',
      checkpoint: bad.checkpoints[0],
      dispute: { kind: 'record', fault: 'AmountMismatch', record: withRecord(0, { amount: 1n })[0] },
    });

    const honestView = await aView(honest(), [2, 3]);
    const equivocating = await resigned(honestView, 1, (cp) => ({ ...cp, cumulativeAmount: 0n }));
    const caught = refusal(equivocating);
    expect(caught.fault).toBe('equivocation');
    expect(caught.evidence).toEqual({ kind: 'equivocation', a: equivocating.checkpoints[0], b: equivocating.checkpoints[1] });
  });
});
