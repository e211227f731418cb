import { openStore, type StoredLease } from '../../../src/store';
import type { UsageRecord } from '../../../src/vocabulary';

function aLease(overrides: Partial<StoredLease> = {}): StoredLease {
  return {
    leaseId: '1', runtimeId: 'pabc-1', quoteNonce: null, tenant: '0x0000000000000000000000000000000000000001', manifestHash: '0x00',
    deposit: 10n ** 30n, rates: { perSecond: 1n, perCpuSecond: 2n, perGpuSecond: 3n, perGiBEgress: 4n }, allocation: { cpuMillicores: 500n, gpuCount: 0n, egressBytesPerSecond: 5n }, maxDuration: 60,
    openedAt: 100, state: 'quoted', endReason: null, exitCode: null, detail: null, closedAt: null, containerId: null,
    startedAt: null, endedAt: null, imageDigest: null, timeline: null, resultDigest: null,
    logsSha256: null, updatedAt: 100, ...overrides,
  };
}

/** Record `index`, each worth 10^40, so its running total is (index + 1) × 10^40 unless given. */
function aRecord(index: number, t0: number, t1: number, total = BigInt(index + 1) * 10n ** 40n): UsageRecord {
  return { leaseId: 1n, index: BigInt(index), t0: BigInt(t0), t1: BigInt(t1), cpuMillis: 1n, memoryByteSeconds: 2n ** 70n, gpuMillis: 0n, rxBytes: 0n, txBytes: 0n, amount: 10n ** 40n, total };
}

const timeline = { nextSeq: 1, boundary: 0, counters: { cpuNanos: 2n ** 64n, memoryBytes: 1, rxBytes: 0n, txBytes: 0n }, gpuCount: 0 };

describe('store repositories', () => {
  it('records a lease with its first transition once, and every transition after it', () => {
    const store = openStore(':memory:');
    const t = { fromState: 'quoted', toState: 'quoted', event: 'lease-opened', reason: 'block 3', at: 100 };
    expect(store.leases.insert(aLease(), t)).toBe(true);
    expect(store.leases.insert(aLease(), t)).toBe(false);
    store.leases.update('1', { state: 'pulling', detail: 'ok' }, { fromState: 'quoted', toState: 'pulling', event: 'pulling', reason: 'ok', at: 101 });
    expect(store.leases.get('1')).toMatchObject({ state: 'pulling', deposit: 10n ** 30n, rates: { perGiBEgress: 4n }, allocation: { cpuMillicores: 500n, egressBytesPerSecond: 5n } });
    expect(store.leases.transitions('1').map((r) => r.toState)).toEqual(['quoted', 'pulling']);
  });

  it('keeps usage contiguous: refuses a hole, an overlap, a repeated index or a broken running total, and stores the timeline with each record', () => {
    const store = openStore(':memory:');
    store.leases.insert(aLease(), { fromState: 'quoted', toState: 'quoted', event: 'x', reason: null, at: 1 });
    store.usage.append('1', aRecord(0, 100, 110), { ...timeline, boundary: 110 });
    expect(() => store.usage.append('1', aRecord(1, 111, 120), timeline)).toThrow(/does not follow/);
    expect(() => store.usage.append('1', aRecord(1, 105, 120), timeline)).toThrow(/does not follow/);
    expect(() => store.usage.append('1', aRecord(0, 110, 120), timeline)).toThrow(/does not follow/);
    expect(() => store.usage.append('1', aRecord(1, 110, 120, 3n * 10n ** 40n), timeline)).toThrow(/does not follow/);
    store.usage.append('1', aRecord(1, 110, 120), { ...timeline, nextSeq: 2, boundary: 120 });
    expect(store.usage.forLease('1').map((r) => [r.index, r.t0, r.t1, r.amount, r.total])).toEqual([[0n, 100n, 110n, 10n ** 40n, 10n ** 40n], [1n, 110n, 120n, 10n ** 40n, 2n * 10n ** 40n]]);
    expect(store.usage.last('1')).toEqual(aRecord(1, 110, 120));
    expect(store.leases.get('1')!.timeline).toEqual({ ...timeline, nextSeq: 2, boundary: 120 });
  });

  it('ignores a replayed chain event and hands out the rest in chain order', () => {
    const store = openStore(':memory:');
    store.inbox.add({ name: 'LeaseClosed', leaseId: '1', args: { closedAt: 5n }, blockNumber: 9, logIndex: 1 });
    store.inbox.add({ name: 'LeaseOpened', leaseId: '1', args: { deposit: 7n }, blockNumber: 8, logIndex: 0 });
    store.inbox.add({ name: 'LeaseClosed', leaseId: '1', args: { closedAt: 5n }, blockNumber: 9, logIndex: 1 });
    const open = store.inbox.open();
    expect(open.map((e) => e.name)).toEqual(['LeaseOpened', 'LeaseClosed']);
    expect(open[1]!.args).toEqual({ closedAt: 5n });
    store.inbox.markHandled(open[0]!.id);
    expect(store.inbox.open()).toHaveLength(1);
  });
  it("summarises many leases' checkpoints in one call: each one's latest and how many the tenant countersigned, none for a lease without", () => {
    const store = openStore(':memory:');
    const t = { fromState: 'quoted', toState: 'quoted', event: 'x', reason: null, at: 1 };
    for (const id of ['1', '2', '3']) store.leases.insert(aLease({ leaseId: id, runtimeId: `pabc-${id}` }), t);
    const cp = (leaseId: bigint, seq: number, tenantSig: string | null) => ({
      leaseId, seq: BigInt(seq), usageRoot: '0x00', recordCount: 1n, cumulativeAmount: BigInt(seq), periodEnd: 1n, resultDigest: '0x00',
      final: false, providerSig: '0x', tenantSig, status: 'signed' as const, createdAt: seq,
    });
    store.checkpoints.insert(cp(1n, 1, '0xaa'));
    store.checkpoints.insert(cp(1n, 2, null));
    store.checkpoints.insert(cp(2n, 1, null));
    const summaries = store.checkpoints.summaries(['1', '2', '3']);
    expect([...summaries.keys()].sort()).toEqual(['1', '2']);
    expect(summaries.get('1')).toMatchObject({ latest: { seq: 2n, tenantSig: null }, countersigned: 1 });
    expect(summaries.get('2')).toMatchObject({ latest: { seq: 1n }, countersigned: 0 });
    expect(store.checkpoints.summaries([]).size).toBe(0);
  });
});
