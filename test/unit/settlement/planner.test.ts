import { claimDeadline, planSettlement, type IntentState, type LeaseFacts, type PlannedCheckpoint, type SettlementPlan } from '../../../src/settlement';

/**
 * planSettlement as a table: one lease's facts in, the chain actions due now out. The windows
 * follow docs/settlement-v2.md: a claim is on time until end + challengeWindow, late (90%) for
 * lateWindow more, refused after; the provider may settle from end + challengeWindow.
 */

const WINDOW = 600n;
const LATE = 1_200n;
/** The lease's end on-chain (closed, or startedAt + maxDuration). */
const END = 100_000n;
const GRACE = 30;
const SIG = `0x${'11'.repeat(65)}`;

/** Checkpoint `seq` over usage worth `amount` up to `periodEnd`, signed at `createdAt` (wall clock). */
function aCheckpoint(seq: number, amount: bigint, periodEnd: bigint, more: Partial<PlannedCheckpoint> = {}): PlannedCheckpoint {
  return { seq: BigInt(seq), cumulativeAmount: amount, periodEnd, final: false, tenantSig: null, createdAt: Number(periodEnd), ...more };
}

interface Situation {
  phase?: LeaseFacts['phase'];
  deposit?: bigint;
  checkpoints?: PlannedCheckpoint[];
  chain?: Partial<LeaseFacts['chain']>;
  now: bigint;
  /** Outbox intents by key: `claim:2`, `redeem:1`, `close`… absent: none sent. */
  intents?: Record<string, IntentState>;
  slashed?: boolean;
}

function plan(s: Situation): SettlementPlan {
  return planSettlement({
    phase: s.phase ?? 'running',
    deposit: s.deposit ?? 10n ** 18n,
    checkpoints: s.checkpoints ?? [],
    chain: { paid: 0n, pending: 0n, payableAt: 0n, end: END, ...s.chain },
    now: s.now,
    // Wall clock and chain time agree here; the grace counts on the wall clock.
    wallNow: Number(s.now),
    challengeWindow: WINDOW,
    lateWindow: LATE,
    claimAfterWindowFraction: 0.5,
    countersignGraceSeconds: GRACE,
    intent: (kind, seq) => s.intents?.[seq === undefined ? kind : `${kind}:${seq}`] ?? 'none',
    ...(s.slashed === undefined ? {} : { providerSlashed: s.slashed }),
  });
}

const RUNNING = END - 50_000n;
const countersigned = { tenantSig: SIG };
const final = { final: true };

describe('planSettlement', () => {
  it.each<[string, Situation, SettlementPlan]>([
    // A running lease.
    ['running, a fresh checkpoint: nothing yet', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 10n)] }, { settled: false, actions: [], quietUntil: RUNNING + 290n }],
    ['running, nothing metered yet: nothing', { now: RUNNING }, { settled: false, actions: [], quietUntil: null }],
    [
      'running, usage unpaid for half the window: the latest checkpoint is claimed on time',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 300n), aCheckpoint(2, 900n, RUNNING - 10n)] },
      { settled: false, actions: [{ kind: 'claim', seq: 2n, late: false }] },
    ],
    [
      'running, unpaid usage just under the fraction: not yet',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 299n)] },
      { settled: false, actions: [], quietUntil: RUNNING + 1n },
    ],
    [
      'running, that claim in flight: nothing more',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n)], intents: { 'claim:1': 'pending' } },
      { settled: false, actions: [] },
    ],
    [
      'running, usage claimed and pending on-chain: no new claim until there is more',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n)], chain: { pending: 500n, payableAt: RUNNING + 200n }, intents: { 'claim:1': 'confirmed' } },
      { settled: false, actions: [], quietUntil: RUNNING + 200n },
    ],
    [
      'running, countersigned: redeemed at once, without waiting',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 10n, countersigned)] },
      { settled: false, actions: [{ kind: 'redeem', seq: 1n }] },
    ],
    [
      'running, an older countersigned and a newer unpaid checkpoint: the countersigned one is redeemed, nothing claimed meanwhile',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n, countersigned), aCheckpoint(2, 900n, RUNNING - 350n)] },
      { settled: false, actions: [{ kind: 'redeem', seq: 1n }] },
    ],
    [
      'running, its redeem in flight: nothing more',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n, countersigned)], intents: { 'redeem:1': 'pending' } },
      { settled: false, actions: [] },
    ],
    [
      'running, redeemed and paid: nothing',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n, countersigned)], chain: { paid: 500n }, intents: { 'redeem:1': 'confirmed' } },
      { settled: false, actions: [], quietUntil: null },
    ],
    [
      'running, the redeem failed: the usage is claimed instead once due',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n, countersigned)], intents: { 'redeem:1': 'failed' } },
      { settled: false, actions: [{ kind: 'claim', seq: 1n, late: false }] },
    ],
    [
      'running, the escrow used up and paid in full: nothing to claim above the deposit',
      { now: RUNNING, deposit: 400n, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n)], chain: { paid: 400n } },
      { settled: false, actions: [], quietUntil: null },
    ],
    [
      'a pending claim matured: finalised',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 900n)], chain: { pending: 500n, payableAt: RUNNING - 1n }, intents: { 'claim:1': 'confirmed' } },
      { settled: false, actions: [{ kind: 'finalize', seq: 1n }] },
    ],
    [
      'a pending claim matured, its finalize already sent: nothing',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 900n)], chain: { pending: 500n, payableAt: RUNNING - 1n }, intents: { 'claim:1': 'confirmed', 'finalize:1': 'pending' } },
      { settled: false, actions: [] },
    ],
    [
      'a pending claim matured and newer usage is due: only the claim, which finalises the matured one first',
      {
        now: RUNNING,
        checkpoints: [aCheckpoint(1, 500n, RUNNING - 1_000n), aCheckpoint(2, 900n, RUNNING - 350n)],
        chain: { pending: 500n, payableAt: RUNNING - 1n },
        intents: { 'claim:1': 'confirmed' },
      },
      { settled: false, actions: [{ kind: 'claim', seq: 2n, late: false }] },
    ],

    // An ended lease (its final checkpoint stored).
    [
      'ended, not closed on-chain: closed, the final checkpoint waits out the grace for the tenant',
      { phase: 'settling', now: END - 1_000n, checkpoints: [aCheckpoint(1, 500n, END - 1_000n, { ...final, createdAt: Number(END - 1_000n) })] },
      { settled: false, actions: [{ kind: 'close' }] },
    ],
    [
      'ended, the tenant countersigned the final checkpoint: redeemed and closed',
      { phase: 'settling', now: END - 1_000n, checkpoints: [aCheckpoint(1, 500n, END - 1_000n, { ...final, ...countersigned })] },
      { settled: false, actions: [{ kind: 'redeem', seq: 1n }, { kind: 'close' }] },
    ],
    [
      'ended, the grace over without a countersignature: claimed on time',
      { phase: 'settling', now: END + 100n, checkpoints: [aCheckpoint(1, 500n, END, { ...final, createdAt: Number(END + 100n) - GRACE })] },
      { settled: false, actions: [{ kind: 'claim', seq: 1n, late: false }] },
    ],
    [
      'ended, within the window, all paid: waits for the window before settling',
      { phase: 'settling', now: END + WINDOW - 1n, checkpoints: [aCheckpoint(1, 500n, END, { ...final, ...countersigned })], chain: { paid: 500n }, intents: { 'redeem:1': 'confirmed' } },
      { settled: false, actions: [] },
    ],
    [
      'after end + window, all paid: settled',
      { phase: 'settling', now: END + WINDOW, checkpoints: [aCheckpoint(1, 500n, END, { ...final, ...countersigned })], chain: { paid: 500n }, intents: { 'redeem:1': 'confirmed', close: 'confirmed' } },
      { settled: false, actions: [{ kind: 'settle' }] },
    ],
    [
      'after end + window, the claim matured: finalised and settled',
      { phase: 'settling', now: END + WINDOW, checkpoints: [aCheckpoint(1, 500n, END, final)], chain: { pending: 500n, payableAt: END + 200n }, intents: { 'claim:1': 'confirmed' } },
      { settled: false, actions: [{ kind: 'finalize', seq: 1n }, { kind: 'settle' }] },
    ],
    [
      'after end + window, the claim still in its window: waits',
      { phase: 'settling', now: END + WINDOW, checkpoints: [aCheckpoint(1, 500n, END, final)], chain: { pending: 500n, payableAt: END + WINDOW + 10n }, intents: { 'claim:1': 'confirmed' } },
      { settled: false, actions: [] },
    ],
    [
      'after end + window, the final checkpoint unpaid: claimed late (90% of what it adds)',
      { phase: 'settling', now: END + WINDOW + 10n, checkpoints: [aCheckpoint(1, 500n, END, { ...final, createdAt: 0 })] },
      { settled: false, actions: [{ kind: 'claim', seq: 1n, late: true }] },
    ],
    [
      'after end + window, the late claim failed: settled without it',
      { phase: 'settling', now: END + WINDOW + 10n, checkpoints: [aCheckpoint(1, 500n, END, { ...final, createdAt: 0 })], intents: { 'claim:1': 'failed' } },
      { settled: false, actions: [{ kind: 'settle' }] },
    ],
    [
      'after the late window, the final checkpoint unpaid: no claim can be made, settled',
      { phase: 'settling', now: END + WINDOW + LATE, checkpoints: [aCheckpoint(1, 500n, END, { ...final, createdAt: 0 })] },
      { settled: false, actions: [{ kind: 'settle' }] },
    ],
    [
      'after the late window, a countersigned checkpoint: still redeemed (a redeem has no deadline), settled after',
      { phase: 'settling', now: END + WINDOW + LATE, checkpoints: [aCheckpoint(1, 500n, END, { ...final, ...countersigned })] },
      { settled: false, actions: [{ kind: 'redeem', seq: 1n }] },
    ],
    [
      'the settle already sent: nothing',
      { phase: 'settling', now: END + WINDOW, checkpoints: [aCheckpoint(1, 500n, END, final)], chain: { paid: 500n }, intents: { 'claim:1': 'confirmed', 'finalize:1': 'confirmed', settle: 'pending' } },
      { settled: false, actions: [] },
    ],
    ['ended without usage, after end + window: settled (all refunded)', { phase: 'settling', now: END + WINDOW }, { settled: false, actions: [{ kind: 'settle' }] }],

    // A slashed provider: no claim, no finalised claim (both revert); redeems still pay; its leases settle from end + window.
    [
      'slashed, running, unpaid usage due: no claim',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n)], slashed: true },
      { settled: false, actions: [], quietUntil: null },
    ],
    [
      'slashed, running, countersigned: still redeemed',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 10n, countersigned)], slashed: true },
      { settled: false, actions: [{ kind: 'redeem', seq: 1n }] },
    ],
    [
      'slashed, a pending claim matured: not finalised',
      { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 900n)], chain: { pending: 500n, payableAt: RUNNING - 1n }, intents: { 'claim:1': 'confirmed' }, slashed: true },
      { settled: false, actions: [], quietUntil: null },
    ],
    [
      'slashed, ended, after end + window with the final checkpoint unpaid: settled at once, nothing claimed',
      { phase: 'settling', now: END + WINDOW, checkpoints: [aCheckpoint(1, 500n, END, { ...final, createdAt: Number(END + WINDOW) })], slashed: true },
      { settled: false, actions: [{ kind: 'settle' }] },
    ],
    [
      'slashed, ended, after end + window with a matured claim: settled, the void claim not finalised',
      { phase: 'settling', now: END + WINDOW, checkpoints: [aCheckpoint(1, 500n, END, final)], chain: { pending: 500n, payableAt: END + 200n }, intents: { 'claim:1': 'confirmed' }, slashed: true },
      { settled: false, actions: [{ kind: 'settle' }] },
    ],

    // Nothing to do.
    ['settled on-chain: done', { phase: 'settling', now: END + WINDOW, checkpoints: [aCheckpoint(1, 500n, END, final)], chain: { end: 0n } }, { settled: true, actions: [] }],
  ])('%s', (_name, situation, expected) => {
    expect(plan(situation)).toEqual(expected);
  });
});

describe('planSettlement quietUntil', () => {
  const quiet: [string, Situation][] = [
    ['a fresh checkpoint (its claim comes due)', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 10n)] }],
    ['a checkpoint claimed, pending on-chain (its finalisation comes due)', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n)], chain: { pending: 500n, payableAt: RUNNING + 200n }, intents: { 'claim:1': 'confirmed' } }],
    ['a claimed checkpoint and a newer one (the earlier of the two)', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n), aCheckpoint(2, 900n, RUNNING - 5n)], chain: { pending: 500n, payableAt: RUNNING + 1_000n }, intents: { 'claim:1': 'confirmed' } }],
    ['a checkpoint past its period (chain time behind the meter)', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING + 40n, { createdAt: Number(RUNNING) })] }],
  ];

  it.each(quiet)('a running lease with %s is quiet until the first second something is due, and due then', (_name, situation) => {
    const { quietUntil } = plan(situation);
    if (typeof quietUntil !== 'bigint') throw new Error(`expected a time, got ${String(quietUntil)}`);
    expect(quietUntil).toBeGreaterThan(situation.now);
    for (const now of [situation.now, (situation.now + quietUntil) / 2n, quietUntil - 1n]) expect(plan({ ...situation, now }).actions).toEqual([]);
    expect(plan({ ...situation, now: quietUntil }).actions).not.toEqual([]);
  });

  it.each<[string, Situation]>([
    ['nothing metered', { now: RUNNING }],
    ['everything redeemed', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n, countersigned)], chain: { paid: 500n }, intents: { 'redeem:1': 'confirmed' } }],
    ['its provider slashed', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n)], slashed: true }],
  ])('a running lease with %s is quiet until its facts change: nothing comes due by time alone', (_name, situation) => {
    expect(plan(situation).quietUntil).toBeNull();
    for (const now of [situation.now + WINDOW, END - 1n]) expect(plan({ ...situation, now }).actions).toEqual([]);
  });

  it.each<[string, Situation]>([
    ['a claim in flight', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n)], intents: { 'claim:1': 'pending' } }],
    ['a redeem in flight', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 400n, countersigned)], intents: { 'redeem:1': 'pending' } }],
    ['a finalisation in flight', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 900n)], chain: { pending: 500n, payableAt: RUNNING - 1n }, intents: { 'claim:1': 'confirmed', 'finalize:1': 'pending' } }],
    ['an action planned', { now: RUNNING, checkpoints: [aCheckpoint(1, 500n, RUNNING - 10n, countersigned)] }],
    ['an ended lease', { phase: 'settling', now: END - 10n, checkpoints: [aCheckpoint(1, 500n, END - 20n, final)] }],
  ])('a lease with %s is looked at again next round', (_name, situation) => {
    expect(plan(situation)).not.toHaveProperty('quietUntil');
  });
});

describe('claimDeadline', () => {
  const facts = (checkpoints: PlannedCheckpoint[], chain: Partial<LeaseFacts['chain']> = {}, deposit = 10n ** 18n): Parameters<typeof claimDeadline>[0] => ({
    deposit,
    checkpoints,
    chain: { paid: 0n, pending: 0n, payableAt: 0n, end: END, ...chain },
    challengeWindow: WINDOW,
  });

  it.each<[string, Parameters<typeof claimDeadline>[0], bigint | undefined]>([
    ['usage checkpointed and unpaid: claimable in full until the challenge window after the end closes', facts([aCheckpoint(1, 500n, RUNNING)]), END + WINDOW],
    ['nothing checkpointed: nothing owed', facts([]), undefined],
    ['paid up to the latest checkpoint: nothing owed', facts([aCheckpoint(1, 500n, RUNNING)], { paid: 500n }), undefined],
    ['a pending claim covers the latest checkpoint: nothing owed', facts([aCheckpoint(1, 500n, RUNNING)], { pending: 500n }), undefined],
    ['usage beyond a deposit already paid in full: nothing more can be owed', facts([aCheckpoint(1, 900n, RUNNING)], { paid: 400n }, 400n), undefined],
    ['settled on-chain: nothing owed', facts([aCheckpoint(1, 500n, RUNNING)], { end: 0n }), undefined],
    ['slashed: claims revert, so no deadline', { ...facts([aCheckpoint(1, 500n, RUNNING)]), providerSlashed: true }, undefined],
  ])('%s', (_name, input, expected) => {
    expect(claimDeadline(input)).toBe(expected);
  });
});
