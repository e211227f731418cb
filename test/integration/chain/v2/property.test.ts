import { type TransactionReceipt } from 'ethers';
import {
  ceilingRate,
  checkpointOf,
  claimCap,
  FAULTS,
  findDispute,
  nextRecord,
  pairFault,
  payableTo,
  recordAmount,
  recordFault,
  usageLimits,
  usageTree,
  type Allocation,
  type Checkpoint,
  type DisputeEvidence,
  type LeaseTerms,
  type MeteredUsage,
  type Rates,
  type UsageRecord,
} from '../../../../src/chain';
import { advance, CHALLENGE_WINDOW } from '../fixture';
import { openV2, registerV2, revertOf, send, signedCheckpoint, startDualFixture, stopDualFixture, v2As, type DualFixture } from './fixture-v2';

/**
 * Whatever a provider signs, a tenant running findDispute over the records it was served either
 * holds evidence the contract upholds, or the claim pays no more than the records' total (and,
 * when a record was withheld, no more than the served records' total plus what the allocation
 * allows over the time they do not cover). Random record sequences from a seeded generator
 * (fast-check is not installed): honest ones, and ones a cheat altered in one or two ways.
 * Every case is checked in TypeScript, its evidence against the contract's own rules by eth_call,
 * and a dozen are played out on anvil as claims, disputes and payments.
 */

jest.setTimeout(120_000);

/** mulberry32: small, seeded, good enough to spread cases. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const int = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
const big = (rng: Rng, lo: bigint, hi: bigint): bigint => lo + (BigInt(Math.floor(rng() * 2 ** 40)) * (hi - lo + 1n)) / 2n ** 40n;
const pick = <T,>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;

function randomRates(rng: Rng): Rates {
  return { perSecond: big(rng, 0n, 5_000n), perCpuSecond: big(rng, 0n, 10_000n), perGpuSecond: big(rng, 0n, 100_000n), perGiBEgress: big(rng, 0n, 10_000_000n) };
}

function randomAllocation(rng: Rng): Allocation {
  return { cpuMillicores: big(rng, 100n, 8_000n), gpuCount: big(rng, 0n, 4n), egressBytesPerSecond: big(rng, 0n, 100_000_000n) };
}

/** Usage of `seconds` from t0 within the allocation, as a clamped meter bills it. */
function honestUsage(rng: Rng, allocation: Allocation, t0: bigint, seconds: bigint): MeteredUsage {
  const limits = usageLimits(allocation, seconds);
  return { t0, t1: t0 + seconds, cpuMillis: big(rng, 0n, limits.cpuMillis), memoryByteSeconds: big(rng, 0n, 2n ** 40n), gpuMillis: limits.gpuMillis, rxBytes: big(rng, 0n, 10n ** 9n), txBytes: big(rng, 0n, limits.txBytes) };
}

function honestRecords(rng: Rng, terms: LeaseTerms, leaseId: bigint): UsageRecord[] {
  const records: UsageRecord[] = [];
  let t = terms.startedAt + BigInt(int(rng, 0, 30));
  for (let i = int(rng, 1, 8); i > 0; i -= 1) {
    const seconds = BigInt(int(rng, 1, 120));
    records.push(nextRecord(leaseId, records[records.length - 1], terms.rates, honestUsage(rng, terms.allocation, t, seconds)));
    t += seconds;
  }
  return records;
}

function rechain(records: UsageRecord[]): UsageRecord[] {
  let total = 0n;
  return records.map((r) => ({ ...r, total: (total += r.amount) }));
}

function repriced(terms: LeaseTerms, r: UsageRecord): UsageRecord {
  return { ...r, amount: recordAmount(terms.rates, r) };
}

interface Case {
  terms: LeaseTerms;
  /** The leaves of the signed root. */
  leaves: UsageRecord[];
  /** What the tenant was served: every leaf but the withheld one, if any. */
  served: UsageRecord[];
  cp: Checkpoint;
  cheats: string[];
}

interface Draft {
  terms: LeaseTerms;
  leaves: UsageRecord[];
  /** Array position of a leaf never served to the tenant. */
  withheld?: number;
}

type LeafCheat = (rng: Rng, d: Draft) => void;
type CheckpointCheat = (rng: Rng, cp: Checkpoint) => Checkpoint;

/** Ways to alter the leaves a provider signs. */
const LEAF_CHEATS: Record<string, LeafCheat> = {
  amount: (rng, d) => {
    const k = int(rng, 0, d.leaves.length - 1);
    d.leaves[k] = { ...d.leaves[k]!, amount: d.leaves[k]!.amount + big(rng, 1n, 10n ** 6n) };
  },
  total: (rng, d) => {
    const k = int(rng, 0, d.leaves.length - 1);
    const delta = big(rng, 1n, 10n ** 6n) * (rng() < 0.3 ? -1n : 1n);
    d.leaves = d.leaves.map((r, i) => (i >= k ? { ...r, total: r.total + delta } : r));
  },
  overlap: (rng, d) => {
    if (d.leaves.length < 2) return;
    const k = int(rng, 1, d.leaves.length - 1);
    const r = d.leaves[k]!;
    d.leaves[k] = repriced(d.terms, { ...r, t0: r.t0 - BigInt(int(rng, 1, 30)) });
  },
  gap: (rng, d) => {
    const k = int(rng, 0, d.leaves.length - 1);
    const shift = BigInt(int(rng, 1, 30));
    d.leaves = d.leaves.map((x, i) => (i >= k ? { ...x, t0: x.t0 + shift, t1: x.t1 + shift } : x));
  },
  swap: (rng, d) => {
    if (d.leaves.length < 2) return;
    const [i, j] = [int(rng, 0, d.leaves.length - 1), int(rng, 0, d.leaves.length - 1)];
    const [a, b] = [d.leaves[i]!, d.leaves[j]!];
    d.leaves[i] = { ...a, t0: b.t0, t1: b.t1 };
    d.leaves[j] = { ...b, t0: a.t0, t1: a.t1 };
  },
  duplicate: (rng, d) => {
    const k = int(rng, 0, d.leaves.length - 1);
    d.leaves.push({ ...d.leaves[k]!, cpuMillis: 0n, amount: d.leaves[k]!.amount + 1n });
  },
  withhold: (rng, d) => {
    // A record never served, whose total carries up to twice what the allocation allows over its time.
    const k = int(rng, 0, d.leaves.length - 1);
    const r = d.leaves[k]!;
    const extra = (ceilingRate(d.terms.rates, d.terms.allocation) * (r.t1 - r.t0) * BigInt(int(rng, 0, 20))) / 10n;
    d.leaves = d.leaves.map((x, i) => (i >= k ? { ...x, total: x.total + extra } : x));
    d.withheld = k;
  },
  overAllocation: (rng, d) => {
    const k = int(rng, 0, d.leaves.length - 1);
    const r = d.leaves[k]!;
    const limits = usageLimits(d.terms.allocation, r.t1 - r.t0);
    const field = pick(rng, ['cpuMillis', 'gpuMillis', 'txBytes'] as const);
    d.leaves[k] = repriced(d.terms, { ...r, [field]: limits[field] + big(rng, 1n, limits[field] + 1n) });
  },
  wrongLease: (rng, d) => {
    const k = int(rng, 0, d.leaves.length - 1);
    d.leaves[k] = { ...d.leaves[k]!, leaseId: d.leaves[k]!.leaseId + 1n };
  },
  index: (rng, d) => {
    const k = int(rng, 0, d.leaves.length - 1);
    d.leaves[k] = { ...d.leaves[k]!, index: BigInt(int(rng, 0, d.leaves.length)) };
  },
  copies: (_rng, d) => {
    d.leaves = rechain(d.leaves.map((_, i) => ({ ...d.leaves[0]!, index: BigInt(i) })));
  },
};

/** Ways to alter the checkpoint over them. */
const CHECKPOINT_CHEATS: Record<string, CheckpointCheat> = {
  claimMore: (rng, cp) => ({ ...cp, cumulativeAmount: cp.cumulativeAmount + big(rng, 1n, cp.cumulativeAmount + 1n) }),
  claimLess: (rng, cp) => ({ ...cp, cumulativeAmount: big(rng, 0n, cp.cumulativeAmount) }),
  period: (rng, cp) => ({ ...cp, periodEnd: cp.periodEnd + BigInt(int(rng, 1, 60)) }),
  count: (rng, cp) => ({ ...cp, recordCount: cp.recordCount + (rng() < 0.5 && cp.recordCount > 1n ? -1n : 1n) }),
};

/** Withholding and the cheats two records disprove are drawn more often, so every outcome is reached. */
const CHEAT_NAMES = [...Object.keys(LEAF_CHEATS), ...Object.keys(CHECKPOINT_CHEATS), 'withhold', 'withhold', 'withhold', 'withhold', 'overlap', 'gap', 'swap'];

/**
 * A case: honest records over `terms`, then 0 to 2 cheats; after leaf cheats a careful cheat
 * sometimes makes the totals add up again. The checkpoint commits to the sequence's original
 * length, the root of whatever leaves there are, and the total and end of the leaf in the last
 * position, before any checkpoint cheat.
 */
function generate(rng: Rng, terms: LeaseTerms, leaseId: bigint): Case {
  const honest = honestRecords(rng, terms, leaseId);
  const draft: Draft = { terms, leaves: [...honest] };
  const cheats: string[] = [];
  for (let i = rng() < 0.25 ? 0 : int(rng, 1, 2); i > 0; i -= 1) cheats.push(pick(rng, CHEAT_NAMES));
  for (const name of cheats) LEAF_CHEATS[name]?.(rng, draft);
  if (cheats.some((name) => LEAF_CHEATS[name]) && rng() < 0.3) {
    draft.leaves = rechain(draft.leaves);
    cheats.push('rechain');
  }
  const last = draft.leaves[honest.length - 1]!;
  let cp: Checkpoint = { ...checkpointOf(leaseId, draft.leaves), recordCount: BigInt(honest.length), cumulativeAmount: last.total, periodEnd: last.t1 };
  for (const name of cheats) if (CHECKPOINT_CHEATS[name]) cp = CHECKPOINT_CHEATS[name]!(rng, cp);
  const served = draft.leaves.filter((_, i) => i !== draft.withheld);
  return { terms, leaves: draft.leaves, served, cp, cheats };
}

/** Whether claim() would take the checkpoint (it is refused otherwise, and nothing is paid). */
function claimable(c: Case, now: bigint, end: bigint): boolean {
  return c.cp.recordCount > 0n && c.cp.periodEnd > c.terms.startedAt && c.cp.periodEnd <= end && c.cp.periodEnd <= now && c.cp.cumulativeAmount <= claimCap(c.terms, c.cp.periodEnd) && c.cp.cumulativeAmount > 0n;
}

/** What the claim may pay at most, given what the tenant was served (the property's bound). */
function bound(c: Case): bigint {
  const covered = c.served.filter((r) => r.index < c.cp.recordCount);
  const unique = new Map(covered.map((r) => [r.index, r]));
  const total = [...unique.values()].reduce((sum, r) => sum + r.amount, 0n);
  const time = [...unique.values()].reduce((sum, r) => sum + (r.t1 - r.t0), 0n);
  const uncovered = c.cp.periodEnd - c.terms.startedAt - time;
  return total + ceilingRate(c.terms.rates, c.terms.allocation) * (uncovered > 0n ? uncovered : 0n);
}

function checkProperty(c: Case): DisputeEvidence | null {
  const evidence = findDispute(c.terms, c.cp, c.served);
  if (c.cheats.length === 0) expect(evidence).toBeNull();
  if (evidence === null) {
    const covered = c.served.filter((r) => r.index < c.cp.recordCount);
    expect(new Set(covered.map((r) => r.index)).size).toBe(Number(c.cp.recordCount));
    expect(c.cp.cumulativeAmount).toBe(covered.reduce((sum, r) => sum + r.amount, 0n));
  }
  // A claim above the cap is refused outright; any other claim the tenant cannot dispute is bounded.
  const takes = c.cp.recordCount > 0n && c.cp.periodEnd > c.terms.startedAt && c.cp.cumulativeAmount <= claimCap(c.terms, c.cp.periodEnd);
  if (takes && (evidence?.kind === 'missing' || evidence === null)) expect(c.cp.cumulativeAmount).toBeLessThanOrEqual(bound(c));
  return evidence;
}

const TERMS_AT = 1_000_000n;

function pureTerms(rng: Rng): LeaseTerms {
  return { provider: '0x' + '11'.repeat(20), tenant: '0x' + '22'.repeat(20), startedAt: TERMS_AT, deposit: 10n ** 15n, rates: randomRates(rng), allocation: randomAllocation(rng) };
}

describe('whatever a provider signs (300 seeded cases, checked in TypeScript)', () => {
  it('the tenant holds evidence, or the claim is the records\' total (within the allocation for records withheld)', () => {
    const rng = random(20_240_611);
    const kinds = { none: 0, record: 0, pair: 0, missing: 0 };
    for (let i = 0; i < 300; i += 1) {
      const c = generate(rng, pureTerms(rng), 42n);
      const evidence = checkProperty(c);
      kinds[evidence ? evidence.kind : 'none'] += 1;
    }
    // The generator reaches every outcome.
    expect(kinds).toEqual({ none: expect.any(Number), record: expect.any(Number), pair: expect.any(Number), missing: expect.any(Number) });
    expect(Math.min(...Object.values(kinds))).toBeGreaterThan(15);
  });
});

describe('on anvil', () => {
  let fx: DualFixture;
  beforeAll(async () => {
    fx = await startDualFixture();
    await registerV2(fx);
  });
  afterAll(async () => {
    await stopDualFixture(fx);
  });

  it('the contract\'s rules agree with the tenant\'s on every record and pair of 150 cases (eth_call)', async () => {
    const rng = random(7);
    const market = fx.v2;
    for (let i = 0; i < 150; i += 1) {
      const c = generate(rng, pureTerms(rng), 42n);
      for (const record of c.served) {
        const [faulty, fault] = (await market.getFunction('recordFault')(c.terms, c.cp, record)) as [boolean, bigint];
        expect(faulty ? FAULTS[Number(fault)] : null).toBe(recordFault(c.terms, c.cp, record));
      }
      const ordered = [...c.served].sort((a, b) => (a.index < b.index ? -1 : a.index > b.index ? 1 : 0));
      for (let j = 1; j < ordered.length; j += 1) {
        const [a, b] = [ordered[j - 1]!, ordered[j]!];
        const [faulty, fault] = (await market.getFunction('pairFault')(c.terms, a, b)) as [boolean, bigint];
        expect(faulty ? FAULTS[Number(fault)] : null).toBe(pairFault(c.terms, a, b));
      }
    }
  });

  it('a dozen cases played out: evidence is upheld, and an undisputed claim pays no more than the bound', async () => {
    const rng = random(99);
    const outcomes: string[] = [];
    for (let played = 0; played < 12; ) {
      const snapshot = (await fx.rpc.send('evm_snapshot', [])) as string;
      try {
        const opened = await openV2(fx, { quote: { rates: randomRates(rng), allocation: randomAllocation(rng), maxDuration: 3_600n }, deposit: 10n ** 15n });
        const c = generate(rng, opened.terms, opened.leaseId);
        const evidence = checkProperty(c);
        const signed = await signedCheckpoint(fx, opened.leaseId, c.leaves, c.cp);
        await advance(fx, 3_600n);
        if (!claimable(c, c.terms.startedAt + 3_600n, c.terms.startedAt + 3_600n)) continue;
        played += 1;
        await send(v2As(fx, fx.provider), 'claim', opened.terms, signed.checkpoint, signed.signature);
        const tenant = v2As(fx, fx.tenant);
        const proof = (r: UsageRecord) => ({ record: r, proof: usageTree(c.leaves).getProof(c.leaves.indexOf(r)) });
        if (evidence?.kind === 'record' || evidence?.kind === 'pair') {
          const receipt: TransactionReceipt =
            evidence.kind === 'record'
              ? await send(tenant, 'disputeRecord', opened.terms, signed.checkpoint, proof(evidence.record))
              : await send(tenant, 'disputeRecordPair', opened.terms, signed.checkpoint, proof(evidence.a), proof(evidence.b));
          const disputed = receipt.logs.map((l) => fx.v2.interface.parseLog(l)).find((e) => e?.name === 'ClaimDisputed')!;
          expect(FAULTS[Number(disputed.args.getValue('fault'))]).toBe(evidence.fault);
          outcomes.push(`upheld ${evidence.fault}`);
          continue;
        }
        for (const record of c.served) expect(await revertOf(tenant.getFunction('disputeRecord')(opened.terms, signed.checkpoint, proof(record)))).toBe('DisputeRejected');
        await advance(fx, CHALLENGE_WINDOW);
        await send(fx.v2, 'finalizeClaim', opened.leaseId);
        const paid = ((await fx.v2.getFunction('getLease')(opened.leaseId)).paid as bigint) + 0n;
        expect(paid).toBe(payableTo(c.cp.cumulativeAmount, opened.terms.deposit));
        expect(paid).toBeLessThanOrEqual(bound(c));
        outcomes.push(evidence ? 'paid within the bound (a record withheld)' : 'paid the total');
      } finally {
        await fx.rpc.send('evm_revert', [snapshot]);
      }
    }
    expect(outcomes.some((o) => o.startsWith('upheld'))).toBe(true);
    expect(outcomes).toContain('paid the total');
  });
});
