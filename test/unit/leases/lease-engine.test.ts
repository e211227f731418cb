import { EngineHarness, T0 } from './engine-harness';

jest.setTimeout(20_000);

let h: EngineHarness;
afterEach(() => h?.stop());

/** Opens lease `id` with quote `id` and waits until it runs. */
async function running(id = '1'): Promise<void> {
  h.quote(id);
  h.open(id, id);
  await h.reach(id, 'running');
}

/** One metering sample of lease 1, stored. */
async function sampled(): Promise<void> {
  const before = h.store.usage.forLease('1').length;
  await h.meterTick();
  await until(() => h.store.usage.forLease('1').length > before);
}

describe('lease engine on the in-memory backend', () => {
  it('runs a lease that exits by itself through to settled, billed with its exit and logs, capacity freed and the workload removed', async () => {
    h = new EngineHarness({ program: () => ({ lines: [{ stream: 'stdout', text: 'hello' }] }) });
    await h.start();
    await running();
    expect(h.held()).toEqual(['lease:1']);
    h.backend.setCounters(h.runtimeId('1'), { cpuNanos: 2_000_000_000n });
    await h.meterTick();
    await h.reach('1', 'running');
    h.clock.advance(1_000);
    h.backend.exit(h.runtimeId('1'), 0);
    const settled = await h.reach('1', 'settled');
    expect(settled).toMatchObject({ endReason: 'exited', exitCode: 0 });
    expect(h.transitions('1')).toEqual(['quoted', 'pulling', 'starting', 'running', 'finishing', 'settling', 'settled']);
    const records = h.store.usage.forLease('1');
    expect(records.length).toBeGreaterThanOrEqual(1);
    expect(records.reduce((s, r) => s + r.cpuMillis, 0n)).toBe(2_000n);
    expect(h.settlement.digests.get('1')).toBe(settled.resultDigest);
    expect(settled.resultDigest).toMatch(/^0x[0-9a-f]{64}$/);
    expect(h.held()).toEqual([]);
    expect(h.backend.has(h.runtimeId('1')).workload).toBe(false);
  });

  it('bills the CPU a workload used after its last sample, read once it exited (within the same second too)', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    h.backend.setCounters(h.runtimeId('1'), { cpuNanos: 1_000_000_000n });
    await sampled();
    expect(h.store.usage.forLease('1').reduce((s, r) => s + r.cpuMillis, 0n)).toBe(1_000n);
    // Within the second after that sample it burns 0.4 CPU-seconds more and exits.
    h.backend.setCounters(h.runtimeId('1'), { cpuNanos: 1_400_000_000n });
    h.backend.exit(h.runtimeId('1'), 0);
    await h.reach('1', 'settled');
    const records = h.store.usage.forLease('1');
    expect(records.reduce((s, r) => s + r.cpuMillis, 0n)).toBe(1_400n);
    // The last one holds what was used after the sample, over the one second it is billed.
    expect(records.at(-1)).toMatchObject({ cpuMillis: 400n });
    expect(records.at(-1)!.t1 - records.at(-1)!.t0).toBe(1n);
  });

  it('bills to the last sample where the backend kept no counters of the ended workload', async () => {
    h = new EngineHarness({ keepsFinalCounters: false });
    await h.start();
    await running();
    h.backend.setCounters(h.runtimeId('1'), { cpuNanos: 1_000_000_000n });
    await sampled();
    h.backend.setCounters(h.runtimeId('1'), { cpuNanos: 3_000_000_000n });
    h.backend.exit(h.runtimeId('1'), 0);
    await h.reach('1', 'settled');
    expect(h.store.usage.forLease('1').reduce((s, r) => s + r.cpuMillis, 0n)).toBe(1_000n);
  });

  it('refuses a lease opened with a manifest it did not quote: rejected once settled, its hold released, nothing run', async () => {
    h = new EngineHarness();
    await h.start();
    h.quote('1');
    h.open('1', '1', { manifestHash: `0x${'cd'.repeat(32)}` });
    const lease = await h.reach('1', 'rejected');
    expect(lease.endReason).toBe('refused');
    expect(lease.detail).toBe('paid and settled on-chain');
    expect(h.transitions('1')).toEqual(['quoted', 'settling', 'rejected']);
    expect(h.store.quotes.get('1')?.state).toBe('released');
    expect(h.held()).toEqual([]);
    expect(h.backend.has(h.runtimeId('1')).workload).toBe(false);
  });

  it('fails a lease whose image cannot be pulled, bills nothing and settles it as failed', async () => {
    h = new EngineHarness();
    await h.start();
    h.backend.failNextPull('provider-test/busybox:latest');
    h.quote('1');
    h.open('1', '1');
    const lease = await h.reach('1', 'failed');
    expect(lease.endReason).toBe('pull-failed');
    expect(h.transitions('1')).toEqual(['quoted', 'pulling', 'finishing', 'settling', 'failed']);
    expect(h.store.usage.forLease('1')).toEqual([]);
    expect(h.held()).toEqual([]);
  });

  it('fails a lease whose workload cannot start', async () => {
    h = new EngineHarness();
    await h.start();
    h.backend.failNextStart(h.runtimeId('1'));
    h.quote('1');
    h.open('1', '1');
    expect(await h.reach('1', 'failed')).toMatchObject({ endReason: 'start-failed' });
    expect(h.transitions('1')).toEqual(['quoted', 'pulling', 'starting', 'finishing', 'settling', 'failed']);
  });

  it('stops a lease the tenant closes on-chain and bills it to the stop', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    h.clock.advance(3_000);
    h.close('1');
    const lease = await h.reach('1', 'settled');
    expect(lease).toMatchObject({ endReason: 'tenant-closed', closedAt: T0 + 3 });
    expect(h.transitions('1')).toEqual(['quoted', 'pulling', 'starting', 'running', 'stopping', 'finishing', 'settling', 'settled']);
    expect(h.store.usage.forLease('1').at(-1)?.t1).toBe(BigInt(T0 + 3));
  });

  it('bills a workload that vanished to its last sample', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    h.backend.vanish(h.runtimeId('1'));
    const lease = await h.reach('1', 'settled');
    expect(lease.endReason).toBe('container-vanished');
    expect(lease.exitCode).toBeNull();
  });

  describe('limit guards', () => {
    it('ends a lease at its maxDuration', async () => {
      h = new EngineHarness();
      await h.start();
      h.quote('1');
      h.open('1', '1', { maxDuration: 8 });
      await h.reach('1', 'running');
      await h.meterTick();
      await h.meterTick();
      const lease = await h.reach('1', 'settled');
      expect(lease.endReason).toBe('max-duration');
      expect(lease.detail).toBe('paid and settled on-chain');
      expect(h.store.leases.transitions('1').find((t) => t.toState === 'stopping')?.reason).toBe('maxDuration of 8s reached');
    });

    it('ends a lease whose usage reached its deposit', async () => {
      h = new EngineHarness();
      await h.start();
      h.quote('1');
      // 10 per second of lease: one 5 s interval costs 50.
      h.open('1', '1', { deposit: 40n });
      await h.reach('1', 'running');
      await h.meterTick();
      const lease = await h.reach('1', 'settled');
      expect(lease.endReason).toBe('escrow-exhausted');
      expect(h.store.leases.transitions('1').find((t) => t.toState === 'stopping')?.reason).toBe('usage 50 reached the deposit 40');
    });

    it('ends a lease the backend stopped for its disk quota', async () => {
      h = new EngineHarness();
      await h.start();
      await running();
      h.backend.overDiskQuota(h.runtimeId('1'));
      expect(await h.reach('1', 'settled')).toMatchObject({ endReason: 'disk-quota' });
    });
  });

  describe('a backend that hangs', () => {
    it('still ends a lease at its maxDuration: the sample times out, the stop is given up on, and the lease is billed to its last sample', async () => {
      h = new EngineHarness();
      await h.start();
      h.quote('1');
      h.open('1', '1', { maxDuration: 4 });
      await h.reach('1', 'running');
      h.backend.hang(h.runtimeId('1'));
      await h.meterTick();
      // Billed and on its way to payment while the backend still hangs; removed once it answers.
      const lease = await h.reach('1', 'settling');
      expect(lease.endReason).toBe('max-duration');
      expect(h.store.leases.transitions('1').find((t) => t.toState === 'finishing')?.reason).toMatch(/could not stop it/);
      expect(h.held()).toEqual([]);
      h.backend.unhang(h.runtimeId('1'));
      await h.reach('1', 'settled');
      expect(h.backend.has(h.runtimeId('1')).workload).toBe(false);
    });

    it('ends a lease the tenant closed while every backend call hangs', async () => {
      h = new EngineHarness();
      await h.start();
      await running();
      h.backend.hang();
      h.close('1');
      expect(await h.reach('1', 'settling')).toMatchObject({ endReason: 'tenant-closed' });
      h.backend.unhang();
      await h.reach('1', 'settled');
    });
  });

  it('drains: every running lease ends with operator-drain and no new quote is taken', async () => {
    h = new EngineHarness();
    await h.start();
    await running('1');
    await running('2');
    await h.engine.drain();
    expect(h.engine.isAccepting).toBe(false);
    for (const id of ['1', '2']) expect(await h.reach(id, 'settled')).toMatchObject({ endReason: 'operator-drain' });
  });

  it('reconciles when the backend comes back after it was lost', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    h.backend.lose();
    h.backend.vanish(h.runtimeId('1'));
    h.backend.comeBack();
    expect(await h.reach('1', 'settled')).toMatchObject({ endReason: 'container-vanished' });
  });
});

describe('lease engine recovery after a crash (in-memory backend)', () => {
  it('admits a lease whose LeaseOpened was stored but not acted on', async () => {
    h = new EngineHarness();
    h.quote('1');
    h.open('1', '1');
    expect(h.lease('1').state).toBe('quoted');
    await h.start();
    await h.reach('1', 'running');
  });

  it.each([
    ['pulling', 'the pull is started again'],
    ['starting', 'the start is made again'],
  ] as const)('takes a lease stored as %s on: %s, and it runs', async (state, _why) => {
    h = new EngineHarness();
    h.quote('1');
    h.open('1', '1');
    h.store.quotes.setState('1', 'used');
    h.store.leases.update('1', { state });
    h.store.inbox.open().forEach((e) => h.store.inbox.markHandled(e.id));
    await h.restart();
    await h.reach('1', 'running');
    expect(h.held()).toEqual(['lease:1']);
  });

  it('adopts a running workload and meters it from its last record', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    await h.meterTick();
    await h.reach('1', 'running');
    const before = h.store.usage.forLease('1').length;
    await h.restart();
    expect(h.held()).toEqual(['lease:1']);
    await h.meterTick();
    await until(() => h.store.usage.forLease('1').length > before);
    h.backend.exit(h.runtimeId('1'), 0);
    expect(await h.reach('1', 'settled')).toMatchObject({ endReason: 'exited' });
    const records = h.store.usage.forLease('1');
    records.forEach((r, i) => i > 0 && expect(r.t0).toBe(records[i - 1]!.t1));
  });

  it('reports the exit of a workload that ended while the daemon was down', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    await h.engine.stop();
    h.backend.exit(h.runtimeId('1'), 3);
    await h.restart();
    expect(await h.reach('1', 'settled')).toMatchObject({ endReason: 'exited', exitCode: 3 });
  });

  it('bills a running lease whose workload vanished while the daemon was down', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    await h.engine.stop();
    h.backend.vanish(h.runtimeId('1'));
    await h.restart();
    expect(await h.reach('1', 'settled')).toMatchObject({ endReason: 'container-vanished' });
  });

  it('stops again a lease stored as stopping whose workload still runs', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    await h.engine.stop();
    h.store.leases.update('1', { state: 'stopping', endReason: 'max-duration' });
    await h.restart();
    expect(await h.reach('1', 'settled')).toMatchObject({ endReason: 'max-duration' });
    expect(h.transitions('1').slice(-3)).toEqual(['finishing', 'settling', 'settled']);
  });

  it('finishes a lease stored as finishing: capacity released, final usage taken once', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    await h.engine.stop();
    h.backend.exit(h.runtimeId('1'), 0);
    h.store.leases.update('1', { state: 'finishing', endReason: 'exited', exitCode: 0 });
    await h.restart();
    expect(h.held()).toEqual([]);
    const lease = await h.reach('1', 'settled');
    expect(lease.resultDigest).not.toBeNull();
  });

  it('settles a lease stored as settling without touching its workload again', async () => {
    h = new EngineHarness();
    h.settlement.stepsToSettle = 3;
    await h.start();
    h.quote('1');
    h.open('1', '1', { manifestHash: `0x${'cd'.repeat(32)}` });
    await h.reach('1', 'settling');
    await h.restart();
    expect(await h.reach('1', 'rejected')).toMatchObject({ endReason: 'refused' });
    expect(h.settlement.steps.get('1')).toBe(3);
  });

  it('leaves a settled lease alone', async () => {
    h = new EngineHarness();
    await h.start();
    await running();
    h.backend.exit(h.runtimeId('1'), 0);
    await h.reach('1', 'settled');
    const steps = h.settlement.steps.get('1');
    await h.restart();
    expect(h.lease('1').state).toBe('settled');
    expect(h.settlement.steps.get('1')).toBe(steps);
    expect(h.held()).toEqual([]);
  });
});

function until(probe: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const end = Date.now() + 5_000;
    const poll = (): void => {
      if (probe()) resolve();
      else if (Date.now() > end) reject(new Error('timed out'));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

