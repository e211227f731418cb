import { AbiCoder, keccak256 } from 'ethers';
import { configSchema } from '../../../src/config';
import { usageAmount, usageTree, type UsageRecord } from '../../../src/chain';
import { EGRESS_ALLOWANCE_BYTES_PER_SECOND, LogDigest, claimCap, draftCheckpoint, leaseRates, maxRatePerSecond, resultDigest, EMPTY_LOGS_SHA256 } from '../../../src/settlement';
import { createHash } from 'node:crypto';

const card = configSchema.parse({
  dataDir: '/tmp/x',
  pricing: { perLeaseSecond: '10', perCpuSecond: '1000', perGiBMemorySecond: '2048', perGpuSecond: '500', perGpuSecondByModel: { H100: '900' }, perGiBEgress: '2' },
}).pricing;

function aRecord(seq: number, overrides: Partial<UsageRecord> = {}): UsageRecord {
  const base = { leaseId: 7n, seq: BigInt(seq), t0: BigInt(100 + seq * 10), t1: BigInt(110 + seq * 10), cpuMillis: 5_000n, memoryByteSeconds: 0n, gpuMillis: 0n, rxBytes: 0n, txBytes: 0n, ...overrides };
  return { ...base, amount: usageAmount({ perSecond: 1n, perCpuSecond: 1000n, perGpuSecond: 0n, perGiBEgress: 0n }, base) };
}

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

  it('caps at the lease second, 5/4 of the CPU, the GPUs and the egress allowance', () => {
    const rates = { perSecond: 10n, perCpuSecond: 1000n, perGpuSecond: 500n, perGiBEgress: 2n ** 30n };
    expect(maxRatePerSecond(rates, { cpuMillis: 2000, gpuCount: 2 })).toBe(10n + 2500n + 1000n + EGRESS_ALLOWANCE_BYTES_PER_SECOND);
    expect(maxRatePerSecond({ perSecond: 0n, perCpuSecond: 0n, perGpuSecond: 0n, perGiBEgress: 0n }, { cpuMillis: 100, gpuCount: 0 })).toBe(1n);
  });

  it('limits a claim by the rate cap and the deposit', () => {
    expect(claimCap(5n, 100, 110, 1_000n)).toBe(50n);
    expect(claimCap(5n, 100, 1100, 1_000n)).toBe(1_000n);
    expect(claimCap(5n, 100, 90, 1_000n)).toBe(0n);
  });
});

describe('checkpoints', () => {
  it('commits to every record: root of their tree, their sum, the last t1', () => {
    const records = [aRecord(0), aRecord(1), aRecord(2)];
    const draft = draftCheckpoint(7n, 3n, records, 10n ** 30n);
    expect(draft.checkpoint.usageRoot).toBe(usageTree(records).root);
    expect(draft.checkpoint.cumulativeAmount).toBe(records.reduce((s, r) => s + r.amount, 0n));
    expect(draft.checkpoint.periodEnd).toBe(130n);
  });

  it('never asks beyond the cap', () => {
    const draft = draftCheckpoint(7n, 1n, [aRecord(0)], 3n);
    expect(draft.checkpoint.cumulativeAmount).toBe(3n);
    expect(draft.total).toBeGreaterThan(3n);
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
