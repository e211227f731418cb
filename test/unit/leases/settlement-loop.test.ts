import { until } from '../../support/until';
import { EngineHarness, T0 } from './engine-harness';

/**
 * The settlement loop steps a running lease (a chain read each) only when its last plan said
 * something could be due: a quiet lease is left alone until its checkpoints change or the time
 * its plan named comes. Rounds run on real time (one a second): each test waits for a few.
 */

jest.setTimeout(20_000);

let h: EngineHarness;
afterEach(() => h?.stop());

async function runningLease(): Promise<void> {
  await h.start();
  h.quote('1');
  h.open('1', '1');
  await h.reach('1', 'running');
}

/** Waits until `n` more settlement rounds have run. */
async function rounds(n: number): Promise<void> {
  const target = h.settlement.withdrawChecks + n;
  await until(`${n} settlement rounds`, () => h.settlement.withdrawChecks >= target, 10_000, 10);
}

const steps = (): number => h.settlement.steps.get('1') ?? 0;

function aCheckpoint(seq: number, more: { tenantSig?: string } = {}): Parameters<EngineHarness['store']['checkpoints']['insert']>[0] {
  return {
    leaseId: 1n,
    seq: BigInt(seq),
    usageRoot: `0x${'00'.repeat(32)}`,
    recordCount: BigInt(seq),
    cumulativeAmount: BigInt(seq * 100),
    periodEnd: BigInt(T0 + seq),
    resultDigest: `0x${'00'.repeat(32)}`,
    final: false,
    providerSig: '0x',
    tenantSig: more.tenantSig ?? null,
    status: 'signed',
    createdAt: T0 + seq,
  };
}

describe('settlement loop and running leases', () => {
  it('steps a running lease with something in flight every round', async () => {
    h = new EngineHarness();
    await runningLease();
    await rounds(1);
    const before = steps();
    await rounds(3);
    expect(steps()).toBeGreaterThanOrEqual(before + 2);
  });

  it('leaves a running lease whose plan is quiet until its facts change alone, and steps it again once a checkpoint is signed or countersigned', async () => {
    h = new EngineHarness();
    h.settlement.runningQuietUntil = null;
    await runningLease();
    await until('the first step', () => steps() === 1, 5_000, 10);
    await rounds(3);
    expect(steps()).toBe(1);

    h.store.checkpoints.insert(aCheckpoint(1));
    await until('a step after the new checkpoint', () => steps() === 2, 5_000, 10);
    await rounds(3);
    expect(steps()).toBe(2);

    h.store.checkpoints.setTenantSignature('1', 1, `0x${'11'.repeat(65)}`);
    await until('a step after the countersignature', () => steps() === 3, 5_000, 10);
    await rounds(2);
    expect(steps()).toBe(3);
  });

  it('steps a quiet running lease again when the chain time its plan named comes', async () => {
    h = new EngineHarness();
    h.settlement.runningQuietUntil = 1_000n;
    h.settlement.roundNow = 10n;
    await runningLease();
    await until('the first step', () => steps() === 1, 5_000, 10);
    await rounds(3);
    expect(steps()).toBe(1);

    h.settlement.roundNow = 1_000n;
    await until('a step at the time named', () => steps() >= 2, 5_000, 10);
  });

  it('reads the facts a round shares only when some lease is stepped', async () => {
    h = new EngineHarness();
    h.settlement.runningQuietUntil = null;
    await runningLease();
    await until('the first step', () => steps() === 1, 5_000, 10);
    await rounds(1);
    const read = h.settlement.rounds;
    await rounds(3);
    expect(h.settlement.rounds).toBe(read);
  });
});
