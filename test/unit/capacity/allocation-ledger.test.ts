import { AllocationLedger, type AllocationRequest } from '../../../src/capacity';
import { isProviderError } from '../../../src/errors';
import { anAllocatable, anAllocatableGpu } from './builders';
import { manualClock, type ManualClock } from '../../../src/util/clock';

const GiB = 2 ** 30;

function clockAt(start: number): ManualClock {
  return manualClock(start);
}

function ask(holder: string, overrides: Partial<AllocationRequest> = {}): AllocationRequest {
  return { holder, cpuMillis: 1000, memoryBytes: GiB, diskBytes: GiB, gpus: { count: 0 }, expiresAt: 60_000, ...overrides };
}

const rtx = (index: number) => anAllocatableGpu({ gpuIndex: index, uuid: `GPU-rtx-${index}`, gpuUuid: `GPU-rtx-${index}` });
const h100 = (index: number) =>
  anAllocatableGpu({ gpuIndex: index, uuid: `GPU-h100-${index}`, gpuUuid: `GPU-h100-${index}`, model: 'NVIDIA H100 80GB HBM3' });
const mig = (index: number, profile: string) =>
  anAllocatableGpu({ kind: 'mig', gpuIndex: 5, migIndex: index, uuid: `MIG-a100-${index}`, gpuUuid: 'GPU-a100-5', model: 'NVIDIA A100-SXM4-40GB', profile });

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isProviderError(err, 'CAPACITY_EXHAUSTED')) return err.message;
    throw err;
  }
  throw new Error('expected CAPACITY_EXHAUSTED');
}

describe('AllocationLedger', () => {
  it('subtracts every open quote and lease from what is allocatable', () => {
    const ledger = new AllocationLedger(anAllocatable({ cpuMillis: 4000, memoryBytes: 8 * GiB, diskBytes: 100 * GiB, gpus: [rtx(0), rtx(1)] }), clockAt(0));
    ledger.reserve(ask('q1', { cpuMillis: 1500, memoryBytes: 3 * GiB, gpus: { count: 1 } }));
    ledger.promote('q1', 'lease-1');
    ledger.reserve(ask('q2', { cpuMillis: 500, memoryBytes: GiB }));
    expect(ledger.free()).toEqual({ cpuMillis: 2000, memoryBytes: 4 * GiB, diskBytes: 98 * GiB, gpus: [rtx(1)] });
  });

  it('gives each GPU to one holder only, so the second asker of the last GPU is refused', () => {
    const ledger = new AllocationLedger(anAllocatable({ gpus: [rtx(0)] }), clockAt(0));
    expect(ledger.reserve(ask('tenant-a', { gpus: { count: 1 } })).gpuUuids).toEqual(['GPU-rtx-0']);
    expect(refusal(() => ledger.reserve(ask('tenant-b', { gpus: { count: 1 } })))).toMatch(/gpus: asked 1, free 0/);
  });

  it('names everything that is short in one refusal', () => {
    const ledger = new AllocationLedger(anAllocatable({ cpuMillis: 1000, memoryBytes: GiB }), clockAt(0));
    expect(refusal(() => ledger.reserve(ask('q', { cpuMillis: 2000, memoryBytes: 2 * GiB, gpus: { count: 2, model: 'H100' } })))).toBe(
      `not enough free capacity: cpu: asked 2000m, free 1000m; memory: asked ${2 * GiB} B, free ${GiB} B; gpus: asked 2 matching "H100", free 0`,
    );
  });

  it('releases an unused quote when it expires', () => {
    const clock = clockAt(0);
    const ledger = new AllocationLedger(anAllocatable({ gpus: [rtx(0)] }), clock);
    ledger.reserve(ask('q1', { gpus: { count: 1 }, expiresAt: 30_000 }));
    clock.advance(29_999);
    expect(ledger.free().gpus).toEqual([]);
    clock.advance(1);
    expect(ledger.free().gpus).toEqual([rtx(0)]);
    expect(() => ledger.promote('q1', 'lease-1')).toThrow(/expired or was released/);
  });

  it('keeps an expired quote\'s hold for the grace the chain needs to report its opening', () => {
    const clock = clockAt(0);
    const ledger = new AllocationLedger(anAllocatable({ gpus: [rtx(0)] }), clock, { quoteGraceMs: 20_000 });
    ledger.reserve(ask('q1', { gpus: { count: 1 }, expiresAt: 30_000 }));
    clock.advance(49_999);
    expect(ledger.promote('q1', 'lease-1').gpuUuids).toEqual(['GPU-rtx-0']);
    const other = new AllocationLedger(anAllocatable({ gpus: [rtx(0)] }), clock, { quoteGraceMs: 20_000 });
    other.reserve(ask('q2', { gpus: { count: 1 }, expiresAt: 30_000 }));
    clock.advance(1);
    expect(other.free().gpus).toEqual([rtx(0)]);
  });

  it('keeps a lease\'s hold past its quote\'s expiry until released', () => {
    const clock = clockAt(0);
    const ledger = new AllocationLedger(anAllocatable({ gpus: [rtx(0)] }), clock);
    ledger.reserve(ask('q1', { gpus: { count: 1 }, expiresAt: 1000 }));
    ledger.promote('q1', 'lease-1');
    clock.advance(10_000);
    expect(ledger.free().gpus).toEqual([]);
    expect(ledger.release('lease-1')).toBe(true);
    expect(ledger.free().gpus).toEqual([rtx(0)]);
  });

  it('picks GPUs of one model, by case-insensitive model match, lowest index first', () => {
    const ledger = new AllocationLedger(anAllocatable({ gpus: [h100(3), rtx(1), h100(2), rtx(0)] }), clockAt(0));
    expect(ledger.reserve(ask('q1', { gpus: { count: 2, model: 'h100' } })).gpuUuids).toEqual(['GPU-h100-2', 'GPU-h100-3']);
    expect(ledger.reserve(ask('q2', { gpus: { count: 2 } })).gpuUuids).toEqual(['GPU-rtx-0', 'GPU-rtx-1']);
  });

  it('never mixes models within a lease', () => {
    const ledger = new AllocationLedger(anAllocatable({ gpus: [h100(0), rtx(1)] }), clockAt(0));
    expect(refusal(() => ledger.reserve(ask('q', { gpus: { count: 2 } })))).toMatch(/gpus: asked 2, free 2 but at most 1 of one model/);
  });

  it('offers whole GPUs before MIG slices, and a MIG slice by its profile', () => {
    const ledger = new AllocationLedger(anAllocatable({ gpus: [mig(0, '3g.20gb'), mig(1, '1g.5gb'), rtx(0)] }), clockAt(0));
    expect(ledger.reserve(ask('q1', { gpus: { count: 1 } })).gpuUuids).toEqual(['GPU-rtx-0']);
    expect(ledger.reserve(ask('q2', { gpus: { count: 1, model: '3g.20gb' } })).gpuUuids).toEqual(['MIG-a100-0']);
    expect(ledger.reserve(ask('q3', { gpus: { count: 1, model: 'A100' } })).gpuUuids).toEqual(['MIG-a100-1']);
  });

  it('rebuilds its holds after a restart', () => {
    const ledger = new AllocationLedger(anAllocatable({ gpus: [rtx(0), rtx(1)] }), clockAt(0));
    ledger.reserve(ask('q1', { gpus: { count: 1 } }));
    ledger.promote('q1', 'lease-1');
    const restarted = new AllocationLedger(anAllocatable({ gpus: [rtx(0), rtx(1)] }), clockAt(0));
    restarted.restore(ledger.list());
    expect(restarted.free().gpus).toEqual([rtx(1)]);
    expect(restarted.get('lease-1')).toMatchObject({ kind: 'lease', gpuUuids: ['GPU-rtx-0'], expiresAt: null });
  });
});
