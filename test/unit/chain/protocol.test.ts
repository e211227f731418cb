import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { Wallet } from 'ethers';
import {
  USAGE_LEAF_ENCODING,
  ceilingRate,
  checkpointOf,
  checkpointsConflict,
  clampToAllocation,
  findDispute,
  latePayableTo,
  leaseIdOf,
  nextRecord,
  pairFault,
  payableTo,
  providerOfLease,
  recordAmount,
  recordFault,
  usageLeaf,
  usageLeafValues,
  usageLimits,
  usageTree,
  type Checkpoint,
  type LeaseTerms,
  type MeteredUsage,
  type UsageRecord,
} from '../../../src/chain';

const TERMS: LeaseTerms = {
  provider: Wallet.createRandom().address,
  tenant: Wallet.createRandom().address,
  startedAt: 1_000_000n,
  deposit: 10n ** 18n,
  rates: { perSecond: 1_000n, perCpuSecond: 2_000n, perGpuSecond: 50_000n, perGiBEgress: 1_000_000n },
  allocation: { cpuMillicores: 2_000n, gpuCount: 1n, egressBytesPerSecond: 10_000_000n },
};
const LEASE = 7n;

function usage(t0: bigint, seconds: bigint, overrides: Partial<MeteredUsage> = {}): MeteredUsage {
  return { t0, t1: t0 + seconds, cpuMillis: 1_500n * seconds, memoryByteSeconds: 2n ** 30n * seconds, gpuMillis: 1_000n * seconds, rxBytes: 100n, txBytes: 1_000_000n * seconds, ...overrides };
}

/** `count` contiguous honest records of 60 s from the lease's start. */
function honest(count = 4, terms: LeaseTerms = TERMS): UsageRecord[] {
  const records: UsageRecord[] = [];
  for (let i = 0; i < count; i += 1) records.push(nextRecord(LEASE, records[i - 1], terms.rates, usage(terms.startedAt + BigInt(i) * 60n, 60n)));
  return records;
}

/** The records with record `i` replaced, indexes and totals kept as they were. */
function withRecord(records: UsageRecord[], i: number, change: Partial<UsageRecord>): UsageRecord[] {
  return records.map((r, j) => (j === i ? { ...r, ...change } : r));
}

/** Re-prices a record after its usage changed (its total moves with its amount). */
function repriced(record: UsageRecord): UsageRecord {
  const amount = recordAmount(TERMS.rates, record);
  return { ...record, amount, total: record.total - record.amount + amount };
}

describe('the usage leaf', () => {
  it('is the StandardMerkleTree leaf of the record\'s fields, in the documented order', () => {
    const records = honest(3);
    const tree = usageTree(records);
    records.forEach((record) => expect(usageLeaf(record)).toBe(tree.leafHash(usageLeafValues(record))));
    expect(StandardMerkleTree.verify(tree.root, USAGE_LEAF_ENCODING, usageLeafValues(records[1]!), tree.getProof(1))).toBe(true);
    expect(USAGE_LEAF_ENCODING).toEqual(['uint256', 'uint64', 'uint64', 'uint64', 'uint64', 'uint256', 'uint64', 'uint64', 'uint64', 'uint256', 'uint256']);
  });

  it('gives one root for one set of records, whatever order they are given in', () => {
    const records = honest(5);
    expect(usageTree([...records].reverse()).root).toBe(usageTree(records).root);
  });
});

describe('building records and checkpoints', () => {
  it('numbers records from 0 and keeps a running total', () => {
    const records = honest(3);
    expect(records.map((r) => r.index)).toEqual([0n, 1n, 2n]);
    expect(records.map((r) => r.total)).toEqual([records[0]!.amount, records[0]!.amount + records[1]!.amount, records[0]!.amount + records[1]!.amount + records[2]!.amount]);
  });

  it('commits a checkpoint to the count, the last total and the last end', () => {
    const records = honest(3);
    expect(checkpointOf(LEASE, records)).toMatchObject({ leaseId: LEASE, recordCount: 3n, cumulativeAmount: records[2]!.total, periodEnd: records[2]!.t1, usageRoot: usageTree(records).root });
  });

  it('prices a record term by term, rounding each down', () => {
    const u = { t0: 0n, t1: 10n, cpuMillis: 1_999n, memoryByteSeconds: 0n, gpuMillis: 999n, rxBytes: 0n, txBytes: 2n ** 29n + 1n };
    expect(recordAmount(TERMS.rates, u)).toBe(1_000n * 10n + (2_000n * 1_999n) / 1_000n + (50_000n * 999n) / 1_000n + (1_000_000n * (2n ** 29n + 1n)) / 2n ** 30n);
  });

  it('never prices usage within the allocation above ceilingRate per second', () => {
    const ceiling = ceilingRate(TERMS.rates, TERMS.allocation);
    for (let seconds = 1n; seconds < 200n; seconds += 7n) {
      const limits = usageLimits(TERMS.allocation, seconds);
      expect(recordAmount(TERMS.rates, usage(0n, seconds, limits))).toBeLessThanOrEqual(ceiling * seconds);
    }
  });

  it('bills what a meter measured cut to the allocation, so an honest record is never over it', () => {
    const measured = usage(TERMS.startedAt, 60n, { cpuMillis: 2_000n * 61n, gpuMillis: 60_001n, txBytes: 10n ** 12n });
    const billed = clampToAllocation(TERMS.allocation, measured);
    expect(billed).toMatchObject({ cpuMillis: 120_000n, gpuMillis: 60_000n, txBytes: 600_000_000n });
    const record = nextRecord(LEASE, undefined, TERMS.rates, billed);
    expect(recordFault(TERMS, checkpointOf(LEASE, [record]), record)).toBeNull();
    expect(clampToAllocation(TERMS.allocation, usage(0n, 60n))).toEqual(usage(0n, 60n));
  });
});

describe('one rule for a checkpoint the escrow cannot pay in full (attack 5)', () => {
  it('signs the exact total, which the tenant\'s check accepts, and pays the deposit', () => {
    const small: LeaseTerms = { ...TERMS, deposit: 100_000n };
    const records = honest(4, small);
    const cp = checkpointOf(LEASE, records);
    expect(cp.cumulativeAmount).toBeGreaterThan(small.deposit);
    expect(findDispute(small, cp, records)).toBeNull();
    expect(payableTo(cp.cumulativeAmount, small.deposit)).toBe(small.deposit);
  });

  it('leaves no other amount to sign: a checkpoint cut to the escrow is disputable', () => {
    const small: LeaseTerms = { ...TERMS, deposit: 100_000n };
    const records = honest(4, small);
    const cut = { ...checkpointOf(LEASE, records), cumulativeAmount: small.deposit };
    expect(findDispute(small, cut, records)).toMatchObject({ kind: 'record', fault: 'TotalMismatch' });
  });

  it('keeps 90% of what a late claim adds', () => {
    expect(latePayableTo(1_000n, 2_000n)).toBe(1_900n);
    expect(latePayableTo(2_000n, 2_000n)).toBe(2_000n);
  });
});

describe('recordFault', () => {
  const records = honest(4);
  const cp = checkpointOf(LEASE, records);
  const cases: [string, UsageRecord, Checkpoint, string | null][] = [
    ['an honest record', records[1]!, cp, null],
    ['the honest last record', records[3]!, cp, null],
    ['a record of another lease', { ...records[1]!, leaseId: LEASE + 1n }, cp, 'WrongLease'],
    ['an index past the count', { ...records[3]!, index: 4n }, cp, 'IndexOutOfRange'],
    ['an empty interval', { ...records[1]!, t1: records[1]!.t0 }, cp, 'BadInterval'],
    ['a start before the lease', { ...records[0]!, t0: TERMS.startedAt - 1n }, cp, 'BadInterval'],
    ['no second left for the records before it', { ...records[2]!, t0: TERMS.startedAt + 1n }, cp, 'BadInterval'],
    ['an end past the period', { ...records[3]!, t1: cp.periodEnd + 1n }, cp, 'BadInterval'],
    ['no second left for the records after it', { ...records[1]!, t1: cp.periodEnd - 1n }, cp, 'BadInterval'],
    ['more CPU than the cores allow', repriced({ ...records[1]!, cpuMillis: 2_000n * 60n + 1n }), cp, 'OverAllocation'],
    ['more GPU time than the GPUs allow', repriced({ ...records[1]!, gpuMillis: 60_001n }), cp, 'OverAllocation'],
    ['more egress than the rate allows', repriced({ ...records[1]!, txBytes: 600_000_001n }), cp, 'OverAllocation'],
    ['an amount off the rates', { ...records[1]!, amount: records[1]!.amount + 1n }, cp, 'AmountMismatch'],
    ['a first total that is not its amount', { ...records[0]!, total: records[0]!.amount + 1n }, cp, 'TotalMismatch'],
    ['a total below its own amount', { ...records[1]!, total: records[1]!.amount - 1n }, cp, 'TotalMismatch'],
    ['more before it than the time allows', { ...records[1]!, total: records[1]!.amount + ceilingRate(TERMS.rates, TERMS.allocation) * 60n + 1n }, cp, 'TotalMismatch'],
    ['a last total that is not the amount claimed', records[3]!, { ...cp, cumulativeAmount: cp.cumulativeAmount + 1n }, 'TotalMismatch'],
    ['more claimed after it than the time allows', records[1]!, { ...cp, cumulativeAmount: records[1]!.total + ceilingRate(TERMS.rates, TERMS.allocation) * 120n + 1n }, 'TotalMismatch'],
    ['a claim below its total', records[1]!, { ...cp, cumulativeAmount: records[1]!.total - 1n }, 'TotalMismatch'],
    ['a last record ending before the period', records[3]!, { ...cp, periodEnd: cp.periodEnd + 1n }, 'PeriodMismatch'],
  ];
  it.each(cases)('%s', (_name, record, checkpoint, fault) => {
    expect(recordFault(TERMS, checkpoint, record)).toBe(fault);
  });
});

describe('pairFault', () => {
  const records = honest(4);
  const ceiling = ceilingRate(TERMS.rates, TERMS.allocation);
  const cases: [string, UsageRecord, UsageRecord, string | null][] = [
    ['two honest neighbours', records[1]!, records[2]!, null],
    ['two honest records apart, in either order', records[3]!, records[0]!, null],
    ['one record twice', records[1]!, records[1]!, null],
    ['two versions of one index', records[1]!, { ...records[1]!, rxBytes: 1n }, 'DuplicateIndex'],
    ['a gap', records[1]!, { ...records[2]!, t0: records[2]!.t0 + 1n }, 'NotContiguous'],
    ['an overlap', records[1]!, { ...records[2]!, t0: records[2]!.t0 - 1n }, 'NotContiguous'],
    ['the order reversed', { ...records[1]!, index: 2n }, { ...records[2]!, index: 1n }, 'NotContiguous'],
    ['too little time for the records between', records[0]!, { ...records[3]!, t0: records[0]!.t1 + 1n }, 'NotContiguous'],
    ['a total that does not add up', records[1]!, { ...records[2]!, total: records[2]!.total + 1n }, 'TotalMismatch'],
    ['a total that falls', records[1]!, { ...records[2]!, total: records[1]!.total }, 'TotalMismatch'],
    ['more between them than the time allows', records[0]!, { ...records[3]!, total: records[0]!.total + records[3]!.amount + ceiling * 120n + 1n }, 'TotalMismatch'],
  ];
  it.each(cases)('%s', (_name, a, b, fault) => {
    expect(pairFault(TERMS, a, b)).toBe(fault);
  });
});

describe('checkpointsConflict', () => {
  const records = honest(4);
  const two = checkpointOf(LEASE, records.slice(0, 2));
  const four = checkpointOf(LEASE, records);
  const ceiling = ceilingRate(TERMS.rates, TERMS.allocation);
  const cases: [string, Checkpoint, Checkpoint, boolean][] = [
    ['the same checkpoint', two, two, false],
    ['a longer prefix of the same records', two, four, false],
    ['the same records as the final checkpoint', four, { ...four, resultDigest: `0x${'11'.repeat(32)}` }, false],
    ['one prefix, another root', two, { ...two, usageRoot: four.usageRoot }, true],
    ['one prefix, another amount', two, { ...two, cumulativeAmount: two.cumulativeAmount + 1n }, true],
    ['one prefix, another end', two, { ...two, periodEnd: two.periodEnd + 1n }, true],
    ['a longer prefix that ends no later', two, { ...four, periodEnd: two.periodEnd }, true],
    ['a longer prefix that costs less', four, { ...two, cumulativeAmount: four.cumulativeAmount + 1n, recordCount: 1n }, true],
    ['more added than the time between allows', two, { ...four, cumulativeAmount: two.cumulativeAmount + ceiling * (four.periodEnd - two.periodEnd) + 1n }, true],
  ];
  it.each(cases)('%s', (_name, a, b, conflict) => {
    expect(checkpointsConflict(TERMS, a, b)).toBe(conflict);
    expect(checkpointsConflict(TERMS, b, a)).toBe(conflict);
  });
});

describe('findDispute: the tenant\'s check of a checkpoint against the records it was served', () => {
  const records = honest(5);
  const cp = checkpointOf(LEASE, records);

  it('finds nothing against honest records, served in any order', () => {
    expect(findDispute(TERMS, cp, [...records].reverse())).toBeNull();
  });

  it('reports a record the checkpoint covers that was not served', () => {
    expect(findDispute(TERMS, cp, records.filter((r) => r.index !== 2n))).toEqual({ kind: 'missing', index: 2n });
  });

  it('prefers evidence to a missing record', () => {
    const served = withRecord(records, 3, { total: records[3]!.total + 1n }).filter((r) => r.index !== 1n);
    expect(findDispute(TERMS, cp, served)).toMatchObject({ kind: 'pair', fault: 'TotalMismatch', b: { index: 3n } });
  });

  it('shows two versions of one record', () => {
    expect(findDispute(TERMS, cp, [...records, { ...records[2]!, rxBytes: 5n }])).toMatchObject({ kind: 'pair', fault: 'DuplicateIndex' });
  });

  it('shows neighbours that overlap', () => {
    const shifted = withRecord(records, 2, { t0: records[2]!.t0 - 10n });
    const again = repriced(shifted[2]!);
    const chained = shifted.map((r, i) => (i === 2 ? again : i > 2 ? { ...r, total: r.total - shifted[2]!.amount + again.amount } : r));
    const evidence = findDispute(TERMS, checkpointOf(LEASE, chained), chained);
    expect(evidence).toMatchObject({ kind: 'pair', fault: 'NotContiguous' });
  });
});

describe('lease ids', () => {
  it('are the provider and the quote nonce, and give the provider back', () => {
    const provider = Wallet.createRandom().address;
    const leaseId = leaseIdOf(provider, 42n);
    expect(leaseId & (2n ** 96n - 1n)).toBe(42n);
    expect(providerOfLease(leaseId)).toBe(provider);
    expect(() => leaseIdOf(provider, 2n ** 96n)).toThrow(RangeError);
  });
});
