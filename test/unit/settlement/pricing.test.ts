import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { AbiCoder, keccak256 } from 'ethers';
import { configSchema } from '../../../src/config';
import { USAGE_LEAF_ENCODING, ceilingRate, checkpointOf, claimCap, payableTo, usageLeafValues, usageTree, type LeaseTerms } from '../../../src/chain';
import { LogDigest, leaseAllocation, leaseRates, resultDigest, usageProofs, EMPTY_LOGS_SHA256 } from '../../../src/settlement';
import { createHash } from 'node:crypto';
import { recordsOf } from '../../support/usage-view';

const card = configSchema.parse({
  dataDir: '/tmp/x',
  pricing: { perLeaseSecond: '10', perCpuSecond: '1000', perGiBMemorySecond: '2048', perGpuSecond: '500', perGpuSecondByModel: { H100: '900' }, perGiBEgress: '2' },
}).pricing;

const runtime = configSchema.parse({ dataDir: '/tmp/x' }).runtime;

/** Three 10 s records of lease 7 from t=100, 5 CPU-s each, at 1 per second and 1000 per CPU-second. */
const threeRecords = () =>
  recordsOf(7n, { perSecond: 1n, perCpuSecond: 1000n, perGpuSecond: 0n, perGiBEgress: 0n }, [0, 1, 2].map((i) => ({
    t0: BigInt(100 + i * 10), t1: BigInt(110 + i * 10), cpuMillis: 5_000n, memoryByteSeconds: 0n, gpuMillis: 0n, rxBytes: 0n, txBytes: 0n,
  })));

describe('pricing', () => {
  it('folds reserved memory into perSecond, rounding up', () => {
    expect(leaseRates(card, { memoryBytes: 2 ** 29, gpuModels: [] }).perSecond).toBe(10n + 1024n);
    expect(leaseRates(card, { memoryBytes: 1, gpuModels: [] }).perSecond).toBe(11n);
  });

  it('prices GPUs by the allocated model, else the default GPU rate; no GPU, no GPU rate', () => {
    expect(leaseRates(card, { memoryBytes: 0, gpuModels: ['H100'] }).perGpuSecond).toBe(900n);
    expect(leaseRates(card, { memoryBytes: 0, gpuModels: ['T4'] }).perGpuSecond).toBe(500n);
    expect(leaseRates(card, { memoryBytes: 0, gpuModels: [] }).perGpuSecond).toBe(0n);
  });

  // maxRatePerSecond is gone (V2): the quote commits an allocation, and the cap on a unilateral
  // claim follows from rates × allocation.
  it('commits the manifest\'s CPU and GPUs, and the configured egress only to a lease that asks for egress', () => {
    expect(leaseAllocation(runtime, { cpuMillis: 1_500, gpuCount: 2, egress: 'public' })).toEqual({ cpuMillicores: 1_500n, gpuCount: 2n, egressBytesPerSecond: 125_000_000n });
    expect(leaseAllocation(runtime, { cpuMillis: 1_500, gpuCount: 0, egress: 'none' }).egressBytesPerSecond).toBe(0n);
    const closed = { egress: { ...runtime.egress, public: false } };
    expect(leaseAllocation(closed, { cpuMillis: 1_500, gpuCount: 0, egress: 'public' }).egressBytesPerSecond).toBe(0n);
  });

  it('bounds a claim by the quoted rates over the allocation, per second since the start; the deposit cuts the payout', () => {
    const rates = leaseRates(card, { memoryBytes: 2 ** 30, gpuModels: ['H100'] });
    const allocation = leaseAllocation(runtime, { cpuMillis: 2_000, gpuCount: 1, egress: 'public' });
    // 10 + 2048 per second, 2 × 1000 for the CPU, 900 for the GPU, ⌈2 × 125e6 / 2^30⌉ = 1 for the egress.
    expect(ceilingRate(rates, allocation)).toBe(10n + 2048n + 2_000n + 900n + 1n);
    const terms: LeaseTerms = { provider: '0x0000000000000000000000000000000000000001', tenant: '0x0000000000000000000000000000000000000002', startedAt: 100n, deposit: 10_000n, rates, allocation };
    expect(claimCap(terms, 110n)).toBe(49_590n);
    expect(claimCap(terms, 90n)).toBe(0n);
    expect(payableTo(claimCap(terms, 110n), terms.deposit)).toBe(10_000n);
  });
});

describe('checkpoints', () => {
  it('commits to every record: root of their tree, their exact total, the last t1', () => {
    const records = threeRecords();
    const cp = checkpointOf(7n, records);
    expect(cp.usageRoot).toBe(usageTree(records).root);
    expect(cp.cumulativeAmount).toBe(records.reduce((s, r) => s + r.amount, 0n));
    expect([cp.recordCount, cp.periodEnd]).toEqual([3n, 130n]);
  });

  // V2's amount rule replaces the old cut to the cap: the checkpoint asks the exact total, and
  // the contract pays at most the deposit (payableTo).
  it('asks the exact total even beyond the deposit', () => {
    const cp = checkpointOf(7n, threeRecords());
    expect(cp.cumulativeAmount).toBe(3n * 5_010n);
    expect(payableTo(cp.cumulativeAmount, 3n)).toBe(3n);
  });

  it('serves each record with its proof against the checkpoint\'s root', () => {
    const records = threeRecords();
    const { usageRoot } = checkpointOf(7n, records);
    const served = usageProofs(records);
    expect(served.map((s) => s.record)).toEqual(records);
    for (const { record, proof } of served) expect(StandardMerkleTree.verify(usageRoot, USAGE_LEAF_ENCODING, usageLeafValues(record), proof)).toBe(true);
    expect(usageProofs([])).toEqual([]);
  });

  it('resultDigest is keccak256(abi.encode(int256 exitCode, bytes32 sha256(logs)))', () => {
    const logs = new LogDigest();
    logs.add('stdout', 'tick 1');
    logs.add('stderr', 'oops');
    const sha = `0x${createHash('sha256').update('stdout\ttick 1\nstderr\toops\n').digest('hex')}`;
    expect(logs.digest()).toBe(sha);
    expect(resultDigest(3, sha)).toBe(keccak256(AbiCoder.defaultAbiCoder().encode(['int256', 'bytes32'], [3n, sha])));
    expect(resultDigest(null, EMPTY_LOGS_SHA256)).toBe(keccak256(AbiCoder.defaultAbiCoder().encode(['int256', 'bytes32'], [-1n, EMPTY_LOGS_SHA256])));
  });
});
