import { Wallet } from 'ethers';
import type { CheckpointView, UsageView } from '../../../src/api';
import { marketplaceDomain, signCheckpoint, usageAmount, usageLeafValues, usageTree, ZERO_BYTES32, type Rates, type UsageRecord } from '../../../src/chain';
import { isUsageFault, verifyUsage, type UsageFault } from '../../../src/tenant';

const provider = Wallet.createRandom();
const domain = marketplaceDomain(31337, Wallet.createRandom().address);
const rates: Rates = { perSecond: 10n, perCpuSecond: 1_000n, perGpuSecond: 0n, perGiBEgress: 1_000n };
const LEASE = 5n;

function aRecord(seq: number, t0: number, t1: number, overrides: Partial<UsageRecord> = {}): UsageRecord {
  const base = { leaseId: LEASE, seq: BigInt(seq), t0: BigInt(t0), t1: BigInt(t1), cpuMillis: 2_000n, memoryByteSeconds: 1n, gpuMillis: 0n, rxBytes: 0n, txBytes: 2n ** 30n, ...overrides };
  return { ...base, amount: overrides.amount ?? usageAmount(rates, base) };
}

/** A view as an honest provider builds it: checkpoints after the given record counts. */
async function aView(records: UsageRecord[], checkpointAfter = [records.length]): Promise<UsageView> {
  const checkpoints: CheckpointView[] = [];
  for (const [i, count] of checkpointAfter.entries()) {
    const covered = records.slice(0, count);
    const checkpoint = { leaseId: LEASE, seq: BigInt(i + 1), usageRoot: usageTree(covered).root, cumulativeAmount: covered.reduce((s, r) => s + r.amount, 0n), periodEnd: covered[covered.length - 1]!.t1, resultDigest: ZERO_BYTES32 };
    checkpoints.push({ checkpoint, providerSignature: await signCheckpoint(provider, domain, checkpoint), tenantSignature: null, status: 'signed' });
  }
  const tree = usageTree(records);
  return { leaseId: LEASE.toString(), rates, records: records.map((record) => ({ record, proof: tree.getProof(usageLeafValues(record)) })), checkpoints };
}

const expectations = { domain, provider: provider.address, leaseId: LEASE };
const honest = () => [aRecord(0, 100, 110), aRecord(1, 110, 120), aRecord(2, 120, 125)];

function faultOf(view: UsageView): UsageFault | 'none' {
  try {
    verifyUsage(view, expectations);
    return 'none';
  } catch (err) {
    const fault = (['wrong-lease', 'rates', 'seq', 'interval', 'amount', 'proof', 'root', 'cumulative', 'checkpoint-signature', 'checkpoint-order', 'no-checkpoint', 'chain-mismatch'] as const).find((f) => isUsageFault(err, f));
    if (!fault) throw err;
    return fault;
  }
}

describe('verifyUsage', () => {
  it('accepts honest records under several checkpoints, each over a prefix', async () => {
    const view = await aView(honest(), [1, 2, 3]);
    const verified = verifyUsage(view, expectations);
    expect(verified.latest.checkpoint.seq).toBe(3n);
    expect(verified.coveredUntil).toBe(125n);
  });

  it.each<[string, () => Promise<UsageView>, UsageFault]>([
    ['overlapping intervals', () => aView([aRecord(0, 100, 110), aRecord(1, 105, 120)]), 'interval'],
    ['a gap between intervals', () => aView([aRecord(0, 100, 110), aRecord(1, 111, 120)]), 'interval'],
    ['an interval that ends before it starts', () => aView([aRecord(0, 100, 110), { ...aRecord(1, 110, 120), t1: 109n, amount: 0n }]), 'interval'],
    ['a skipped seq', () => aView([aRecord(0, 100, 110), aRecord(2, 110, 120)]), 'seq'],
    ['a record of another lease', () => aView([aRecord(0, 100, 110, { leaseId: 6n })]), 'wrong-lease'],
    ['a wrong amount', () => aView([aRecord(0, 100, 110, { amount: 1n })]), 'amount'],
    ['no checkpoint', async () => ({ ...(await aView(honest())), checkpoints: [] }), 'no-checkpoint'],
    ['records the latest checkpoint does not cover', () => aView(honest(), [2]), 'cumulative'],
    ['a cumulative amount that goes down', async () => {
      const view = await aView(honest(), [2, 3]);
      const [a, b] = view.checkpoints as [CheckpointView, CheckpointView];
      view.checkpoints = [{ ...a, checkpoint: { ...a.checkpoint, seq: 3n } }, { ...b, checkpoint: { ...b.checkpoint, seq: 2n } }];
      view.checkpoints[0]!.providerSignature = await signCheckpoint(provider, domain, view.checkpoints[0]!.checkpoint);
      view.checkpoints[1]!.providerSignature = await signCheckpoint(provider, domain, view.checkpoints[1]!.checkpoint);
      return view;
    }, 'checkpoint-order'],
    ['a checkpoint signed by someone else', async () => {
      const view = await aView(honest());
      view.checkpoints[0]!.providerSignature = await signCheckpoint(Wallet.createRandom(), domain, view.checkpoints[0]!.checkpoint);
      return view;
    }, 'checkpoint-signature'],
    ['a view of another lease', async () => ({ ...(await aView(honest())), leaseId: '6' }), 'wrong-lease'],
  ])('rejects %s', async (_name, build, fault) => {
    expect(faultOf(await build())).toBe(fault);
  });
});
