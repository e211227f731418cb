import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { Wallet, verifyTypedData } from 'ethers';
import type { CheckpointView, UsageView } from '../../../src/api';
import {
  CHECKPOINT_TYPES,
  USAGE_LEAF_ENCODING,
  ceilingRate,
  checkpointOf,
  checkpointsConflict,
  claimCap,
  leaseIdOf,
  marketplaceDomain,
  nextRecord,
  pairFault,
  payableTo,
  recordAmount,
  recordFault,
  signCheckpoint,
  usageLeafValues,
  usageLimits,
  usageTree,
  type Checkpoint,
  type LeaseTerms,
  type UsageRecord,
} from '../../../src/chain';
import { UsageUnverifiedError, verifyUsage, type UsageEvidence } from '../../../src/tenant';

/**
 * Whatever a provider serves, signed with its key and proven against its own roots, the tenant's
 * verifier either accepts it, and then the latest checkpoint carries exactly its records' total
 * and no checkpoint of the view can be claimed for more, or refuses it with evidence the
 * contract's rules (their TypeScript mirror, src/chain/evidence.ts) uphold, or refuses it for a
 * record it was not served, and then the claim is bounded by the records it was served plus what
 * the allocation allows over the time they do not cover. Random honest sequences from a seeded
 * generator (fast-check is not installed) and the same with one or two corruptions.
 */

jest.setTimeout(60_000);

const PROVIDER = new Wallet(`0x${'4f'.repeat(32)}`);
const TENANT = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
const DOMAIN = marketplaceDomain(31337, '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512');
const STARTED = 1_700_000_000n;
const CASES = 300;

type Rng = () => number;

/** splitmix32, seeded: the same cases on every run. */
function seeded(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

const between = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
/** A bigint in [lo, hi], spread over 2^40 steps. */
const upTo = (rng: Rng, lo: bigint, hi: bigint): bigint => lo + (BigInt(Math.floor(rng() * 2 ** 40)) * (hi - lo + 1n)) / 2n ** 40n;

function someTerms(rng: Rng): LeaseTerms {
  return {
    provider: PROVIDER.address,
    tenant: TENANT,
    startedAt: STARTED,
    // Sometimes less than the usage costs: the escrow cuts the payout, never the checkpoint.
    deposit: upTo(rng, 1n, 10n ** 12n),
    rates: { perSecond: upTo(rng, 0n, 4_000n), perCpuSecond: upTo(rng, 0n, 20_000n), perGpuSecond: upTo(rng, 0n, 50_000n), perGiBEgress: upTo(rng, 0n, 5_000_000n) },
    allocation: { cpuMillicores: upTo(rng, 100n, 16_000n), gpuCount: upTo(rng, 0n, 2n), egressBytesPerSecond: upTo(rng, 0n, 125_000_000n) },
  };
}

/** What an honest, clamped meter records: 1 to 8 contiguous records from at or after the start. */
function honestSequence(rng: Rng, terms: LeaseTerms, leaseId: bigint): UsageRecord[] {
  const records: UsageRecord[] = [];
  let t0 = STARTED + BigInt(between(rng, 0, 20));
  for (let n = between(rng, 1, 8); n > 0; n -= 1) {
    const seconds = BigInt(between(rng, 1, 90));
    const limits = usageLimits(terms.allocation, seconds);
    const usage = {
      t0,
      t1: t0 + seconds,
      cpuMillis: upTo(rng, 0n, limits.cpuMillis),
      memoryByteSeconds: upTo(rng, 0n, 2n ** 36n),
      gpuMillis: rng() < 0.5 ? limits.gpuMillis : upTo(rng, 0n, limits.gpuMillis),
      rxBytes: upTo(rng, 0n, 10n ** 8n),
      txBytes: upTo(rng, 0n, limits.txBytes),
    };
    records.push(nextRecord(leaseId, records.at(-1), terms.rates, usage));
    t0 += seconds;
  }
  return records;
}

/** What the provider signs and serves, before signing: its leaves, its checkpoints, what it withholds. */
interface Plan {
  terms: LeaseTerms;
  leaseId: bigint;
  /** The leaves of the latest root, in tree order. */
  leaves: UsageRecord[];
  /** The position of the leaf the latest checkpoint takes its total and end from. */
  last: number;
  recordCount: bigint;
  /** Earlier checkpoints: over the first `count` leaves, as an honest provider signs them, then altered by `edit`. */
  earlier: { count: number; edit?: (cp: Checkpoint) => Checkpoint }[];
  edits: ((cp: Checkpoint) => Checkpoint)[];
  /** Positions never served. */
  withheld: Set<number>;
  /** Positions served twice. */
  servedTwice: number[];
  /** A checkpoint over fewer leaves comes after the latest one (a higher seq), and the view serves what it covers. */
  seqSwapped: boolean;
  shuffled: boolean;
}

type Corruption = (rng: Rng, plan: Plan) => void;

const at = (plan: Plan, rng: Rng): number => between(rng, 0, plan.leaves.length - 1);
const repriced = (terms: LeaseTerms, r: UsageRecord): UsageRecord => ({ ...r, amount: recordAmount(terms.rates, r) });

/** Each changes what the provider signs or serves; `benign` ones leave an honest view honest. */
const CORRUPTIONS: Record<string, { benign?: true; apply: Corruption }> = {
  amount: { apply: (rng, p) => alter(p, at(p, rng), (r) => ({ ...r, amount: r.amount + upTo(rng, 1n, 10n ** 6n) })) },
  totals: {
    apply: (rng, p) => {
      const k = at(p, rng);
      const delta = upTo(rng, 1n, 10n ** 6n);
      const down = rng() < 0.3 && p.leaves.slice(k).every((r) => r.total >= delta);
      p.leaves = p.leaves.map((r, i) => (i >= k ? { ...r, total: down ? r.total - delta : r.total + delta } : r));
    },
  },
  gap: {
    apply: (rng, p) => {
      const k = at(p, rng);
      const shift = BigInt(between(rng, 1, 30));
      p.leaves = p.leaves.map((r, i) => (i >= k ? { ...r, t0: r.t0 + shift, t1: r.t1 + shift } : r));
    },
  },
  overlap: {
    apply: (rng, p) => {
      if (p.leaves.length < 2) return;
      const k = between(rng, 1, p.leaves.length - 1);
      p.leaves[k] = repriced(p.terms, { ...p.leaves[k]!, t0: p.leaves[k]!.t0 - BigInt(between(rng, 1, 30)) });
    },
  },
  order: {
    apply: (rng, p) => {
      const [i, j] = [at(p, rng), at(p, rng)];
      const [a, b] = [p.leaves[i]!, p.leaves[j]!];
      p.leaves[i] = { ...a, t0: b.t0, t1: b.t1 };
      p.leaves[j] = { ...b, t0: a.t0, t1: a.t1 };
    },
  },
  overshoot: {
    apply: (rng, p) => {
      const k = at(p, rng);
      const r = p.leaves[k]!;
      const limits = usageLimits(p.terms.allocation, r.t1 - r.t0);
      const field = (['cpuMillis', 'gpuMillis', 'txBytes'] as const)[between(rng, 0, 2)]!;
      p.leaves[k] = repriced(p.terms, { ...r, [field]: limits[field] + upTo(rng, 1n, limits[field] + 1n) });
    },
  },
  drop: {
    // A record left out of the root; the checkpoint still counts it.
    apply: (rng, p) => {
      if (p.leaves.length < 2) return;
      p.leaves.splice(at(p, rng), 1);
      p.last = Math.min(p.last, p.leaves.length - 1);
    },
  },
  duplicate: {
    // A second leaf with one record's index and other content.
    apply: (rng, p) => {
      const r = p.leaves[at(p, rng)]!;
      p.leaves.push({ ...r, rxBytes: r.rxBytes + 1n, amount: r.amount + BigInt(between(rng, 0, 1)) });
    },
  },
  withhold: {
    // A record in the root, never served; its total may carry up to twice what the allocation allows over its time.
    apply: (rng, p) => {
      const k = at(p, rng);
      const r = p.leaves[k]!;
      const extra = (ceilingRate(p.terms.rates, p.terms.allocation) * (r.t1 - r.t0) * BigInt(between(rng, 0, 20))) / 10n;
      p.leaves = p.leaves.map((x, i) => (i >= k ? { ...x, total: x.total + extra } : x));
      p.withheld.add(k);
    },
  },
  wrongLease: { apply: (rng, p) => alter(p, at(p, rng), (r) => ({ ...r, leaseId: r.leaseId + 1n })) },
  index: {
    apply: (rng, p) => {
      const k = at(p, rng);
      p.leaves[k] = { ...p.leaves[k]!, index: BigInt(between(rng, 0, p.leaves.length)) };
    },
  },
  cumulativeAmount: {
    apply: (rng, p) => {
      const up = rng() < 0.6;
      p.edits.push((cp) => ({ ...cp, cumulativeAmount: up || cp.cumulativeAmount === 0n ? cp.cumulativeAmount + upTo(rng, 1n, cp.cumulativeAmount + 1n) : upTo(rng, 0n, cp.cumulativeAmount - 1n) }));
    },
  },
  periodEnd: { apply: (rng, p) => void p.edits.push((cp) => ({ ...cp, periodEnd: cp.periodEnd + BigInt(rng() < 0.3 ? -between(rng, 1, 5) : between(rng, 1, 60)) })) },
  recordCount: { apply: (rng, p) => void p.edits.push((cp) => ({ ...cp, recordCount: cp.recordCount + (rng() < 0.5 && cp.recordCount > 1n ? -1n : 1n) })) },
  equivocate: {
    // An earlier checkpoint that no record sequence extends into the latest one.
    apply: (rng, p) => {
      const count = between(rng, 1, p.leaves.length);
      const edits: ((cp: Checkpoint) => Checkpoint)[] = [
        (cp) => ({ ...cp, cumulativeAmount: cp.cumulativeAmount + 10n ** 13n }),
        (cp) => ({ ...cp, periodEnd: cp.periodEnd + 10_000n }),
        (cp) => ({ ...cp, usageRoot: `0x${'ee'.repeat(32)}` }),
      ];
      p.earlier.push({ count, edit: edits[between(rng, 0, edits.length - 1)]! });
    },
  },
  seqOrder: { apply: (_rng, p) => void (p.seqSwapped = p.leaves.length >= 2) },
  servedTwice: { benign: true, apply: (rng, p) => void p.servedTwice.push(at(p, rng)) },
  shuffled: { benign: true, apply: (_rng, p) => void (p.shuffled = true) },
  earlierHonest: { benign: true, apply: (rng, p) => void p.earlier.push({ count: between(rng, 1, p.leaves.length) }) },
};

function alter(plan: Plan, position: number, change: (r: UsageRecord) => UsageRecord): void {
  plan.leaves[position] = change(plan.leaves[position]!);
}

/** The drawing weights: withholding and the pair faults often, so that every outcome is reached. */
const NAMES = [...Object.keys(CORRUPTIONS), 'withhold', 'withhold', 'overlap', 'gap', 'order', 'equivocate', 'seqOrder'];

interface Case {
  terms: LeaseTerms;
  view: UsageView;
  corruptions: string[];
  leaseId: bigint;
}

async function signed(seq: number, checkpoint: Checkpoint): Promise<CheckpointView> {
  return { seq, checkpoint, providerSignature: await signCheckpoint(PROVIDER, DOMAIN, checkpoint), tenantSignature: null, status: 'signed' };
}

async function aCase(rng: Rng): Promise<Case> {
  const terms = someTerms(rng);
  const leaseId = leaseIdOf(PROVIDER.address, BigInt(between(rng, 1, 1_000_000)));
  const honest = honestSequence(rng, terms, leaseId);
  const plan: Plan = { terms, leaseId, leaves: [...honest], last: honest.length - 1, recordCount: BigInt(honest.length), earlier: [], edits: [], withheld: new Set(), servedTwice: [], seqSwapped: false, shuffled: false };
  const corruptions = Array.from({ length: rng() < 0.2 ? 0 : between(rng, 1, 2) }, () => NAMES[between(rng, 0, NAMES.length - 1)]!);
  for (const name of corruptions) CORRUPTIONS[name]!.apply(rng, plan);
  // A careful cheat makes the running totals add up again after changing the leaves.
  if (corruptions.some((name) => ['amount', 'overlap', 'order', 'overshoot', 'duplicate', 'drop', 'index'].includes(name)) && rng() < 0.3) {
    let total = 0n;
    plan.leaves = plan.leaves.map((r) => ({ ...r, total: (total += r.amount) }));
    corruptions.push('rechained');
  }
  const lastLeaf = plan.leaves[plan.last]!;
  let latest: Checkpoint = { ...checkpointOf(leaseId, plan.leaves), recordCount: plan.recordCount, cumulativeAmount: lastLeaf.total, periodEnd: lastLeaf.t1 };
  for (const edit of plan.edits) latest = edit(latest);
  const earlier = plan.earlier
    .sort((a, b) => a.count - b.count)
    .map(({ count, edit }) => {
      const cp = checkpointOf(leaseId, plan.leaves.slice(0, count));
      return edit ? edit(cp) : cp;
    });
  const ordered = [...earlier, latest];
  let served = plan.leaves;
  if (plan.seqSwapped) {
    served = plan.leaves.slice(0, between(rng, 1, plan.leaves.length - 1));
    ordered.push(checkpointOf(leaseId, served));
  }
  const checkpoints = await Promise.all(ordered.map((cp, i) => signed(i + 1, cp)));
  const tree = usageTree(served);
  const proven = served.map((record, i) => ({ record, proof: tree.getProof(i) }));
  let records = proven.filter((_, i) => !plan.withheld.has(i));
  for (const i of plan.servedTwice) if (proven[i]) records.push(proven[i]);
  if (plan.shuffled) records = records.map((r) => ({ r, key: rng() })).sort((x, y) => x.key - y.key).map(({ r }) => r);
  return { terms, leaseId, corruptions, view: { leaseId: leaseId.toString(), rates: terms.rates, records, checkpoints, gpus: [] } };
}

type Outcome = 'accepted' | 'equivocation' | 'record' | 'pair' | 'missing' | 'checkpoint-order';

/** The property, for one case; returns which way it went. */
function check(c: Case): Outcome {
  const expectations = { domain: DOMAIN, provider: PROVIDER.address, leaseId: c.leaseId, terms: c.terms };
  let refusal: UsageUnverifiedError;
  try {
    const verified = verifyUsage(c.view, expectations);
    const cp = verified.latest.checkpoint;
    const unique = new Map(c.view.records.map(({ record }) => [record.index, record]));
    const total = [...unique.values()].reduce((sum, r) => sum + r.amount, 0n);
    // Exactly records 0 .. recordCount - 1, each as the contract prices and bounds it, adding up to the checkpoint.
    expect([...unique.keys()].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: Number(cp.recordCount) }, (_, i) => BigInt(i)));
    for (const r of unique.values()) expect(recordFault(c.terms, cp, r)).toBeNull();
    expect(verified.total).toBe(total);
    expect(cp.cumulativeAmount).toBe(total);
    // No checkpoint the provider signed in this view can be claimed for more than what was verified.
    for (const other of c.view.checkpoints) expect(payableTo(other.checkpoint.cumulativeAmount, c.terms.deposit)).toBeLessThanOrEqual(total);
    return 'accepted';
  } catch (err) {
    if (!(err instanceof UsageUnverifiedError)) throw err;
    refusal = err;
  }
  // Everything here is signed by the provider and proven against its roots: a refusal without
  // evidence is only for checkpoints out of order, which the view must then show.
  if (refusal.fault === 'checkpoint-order') {
    const bySeq = [...c.view.checkpoints].sort((a, b) => a.seq - b.seq);
    expect(bySeq.some((cp, i) => i > 0 && cp.checkpoint.recordCount < bySeq[i - 1]!.checkpoint.recordCount)).toBe(true);
    return 'checkpoint-order';
  }
  expect(refusal.evidence).toBeDefined();
  return upheld(c, refusal.evidence as UsageEvidence);
}

/** The evidence is what the contract's rules uphold, or (a record withheld) the claim is bounded. */
function upheld(c: Case, evidence: UsageEvidence): Outcome {
  if (evidence.kind === 'equivocation') {
    for (const side of [evidence.a, evidence.b]) expect(verifyTypedData(DOMAIN, CHECKPOINT_TYPES, side.checkpoint, side.providerSignature)).toBe(PROVIDER.address);
    expect(checkpointsConflict(c.terms, evidence.a.checkpoint, evidence.b.checkpoint)).toBe(true);
    return 'equivocation';
  }
  const cp = evidence.checkpoint.checkpoint;
  const { dispute } = evidence;
  const inRoot = (r: UsageRecord): boolean => c.view.records.some((s) => s.record === r && StandardMerkleTree.verify(cp.usageRoot, USAGE_LEAF_ENCODING, usageLeafValues(r), s.proof));
  if (dispute.kind === 'record') {
    expect(inRoot(dispute.record)).toBe(true);
    expect(recordFault(c.terms, cp, dispute.record)).toBe(dispute.fault);
    return 'record';
  }
  if (dispute.kind === 'pair') {
    expect(inRoot(dispute.a) && inRoot(dispute.b)).toBe(true);
    expect(pairFault(c.terms, dispute.a, dispute.b)).toBe(dispute.fault);
    return 'pair';
  }
  // Not served: no evidence on-chain, but a claim the contract takes is bounded by what was served.
  expect(c.view.records.some(({ record }) => record.index === dispute.index)).toBe(false);
  if (cp.cumulativeAmount <= claimCap(c.terms, cp.periodEnd)) {
    const unique = new Map(c.view.records.map(({ record }) => [record.index, record]));
    const values = [...unique.values()];
    const uncovered = cp.periodEnd - STARTED - values.reduce((sum, r) => sum + (r.t1 - r.t0), 0n);
    const bound = values.reduce((sum, r) => sum + r.amount, 0n) + ceilingRate(c.terms.rates, c.terms.allocation) * (uncovered > 0n ? uncovered : 0n);
    expect(cp.cumulativeAmount).toBeLessThanOrEqual(bound);
  }
  return 'missing';
}

describe(`verifyUsage over ${CASES} seeded views, honest and corrupted`, () => {
  it('accepts exactly the records\' total, or holds evidence the contract upholds, or bounds a claim over a record withheld', async () => {
    const rng = seeded(0x5eed_2026);
    const outcomes: Record<Outcome, number> = { accepted: 0, equivocation: 0, record: 0, pair: 0, missing: 0, 'checkpoint-order': 0 };
    for (let i = 0; i < CASES; i += 1) {
      const c = await aCase(rng);
      let outcome: Outcome;
      try {
        outcome = check(c);
        // An honest provider's view, however it is served, is accepted.
        if (c.corruptions.every((name) => CORRUPTIONS[name]?.benign)) expect(outcome).toBe('accepted');
      } catch (err) {
        throw new Error(`case ${i} (${c.corruptions.join(', ') || 'honest'}): ${(err as Error).message}`, { cause: err });
      }
      outcomes[outcome] += 1;
    }
    // The generator reaches every outcome.
    expect(Math.min(...Object.values(outcomes))).toBeGreaterThanOrEqual(5);
    expect(outcomes.accepted).toBeGreaterThan(CASES / 10);
  });
});
