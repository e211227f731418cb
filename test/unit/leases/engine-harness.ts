import { AllocationLedger } from '../../../src/capacity';
import { quoteNonceOf, type MarketplaceEvent } from '../../../src/chain';
import { configSchema, type ProviderConfig } from '../../../src/config';
import { LeaseEngine, quoteHolder, type LeaseEngineDeps, type LeaseSettlement } from '../../../src/leases';
import { silentLogger } from '../../../src/log';
import { LogArchive, MemoryBackend, type MemoryProgram, type ManifestInput } from '../../../src/runtime';
import { tempDir } from '../../support/cli-io';
import type { SettlementRound, StepOutcome } from '../../../src/settlement';
import { openStore, type Store, type StoredLease } from '../../../src/store';
import { manualClock, type ManualClock } from '../../../src/util/clock';
import type { LeaseState } from '../../../src/vocabulary';
import { until } from '../../support/until';
import { anAllocatable } from '../capacity/builders';

export const PROVIDER = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
export const TENANT = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
export const T0 = 1_700_000_000;
const MANIFEST_HASH = `0x${'ab'.repeat(32)}`;
const RATES = { perSecond: 10n, perCpuSecond: 1_000n, perGpuSecond: 0n, perGiBEgress: 0n };
/** What aManifest() asks (1000 millicores, no GPU, no egress): the allocation the quote commits and LeaseOpened repeats. */
const ALLOCATION = { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: 0n };

/** Settlement as the engine sees it, in memory: a lease is settled after `stepsToSettle` steps. */
export class FakeSettlement implements LeaseSettlement {
  stepsToSettle = 1;
  runningQuietUntil: bigint | null | undefined = undefined;
  /** Chain time every round reports. */
  roundNow = 0n;
  rounds = 0;
  /** One per settlement round (each round ends with it). */
  withdrawChecks = 0;
  readonly checkpointed: string[] = [];
  readonly steps = new Map<string, number>();
  readonly digests = new Map<string, string>();

  checkpoint(lease: StoredLease): Promise<unknown> {
    this.checkpointed.push(lease.leaseId);
    return Promise.resolve(undefined);
  }

  round(): Promise<SettlementRound> {
    this.rounds += 1;
    return Promise.resolve({ now: this.roundNow, challengeWindow: 600n, lateWindow: 1_200n, slashed: false });
  }

  /** A running lease: `quietUntil` as this says (absent: look again next round); an ended one: settled after `stepsToSettle`. */
  step(lease: StoredLease, _round: SettlementRound, resultDigest?: string): Promise<StepOutcome> {
    const n = (this.steps.get(lease.leaseId) ?? 0) + 1;
    this.steps.set(lease.leaseId, n);
    if (lease.state === 'running') return Promise.resolve(this.runningQuietUntil === undefined ? { settled: false } : { settled: false, quietUntil: this.runningQuietUntil });
    if (resultDigest !== undefined) this.digests.set(lease.leaseId, resultDigest);
    return Promise.resolve({ settled: n >= this.stepsToSettle });
  }

  withdrawIfDue(): Promise<void> {
    this.withdrawChecks += 1;
    return Promise.resolve();
  }
}

export interface HarnessOptions {
  program?: (manifest: ManifestInput) => MemoryProgram;
  config?: Record<string, unknown>;
  /** The memory backend's bound on a call to a hung workload (on the manual clock). */
  callTimeoutMs?: number;
  /** Whether the backend keeps an ended workload's counters (default true). */
  keepsFinalCounters?: boolean;
  /** Archive logs before removing a settled lease's workload (in a fresh temporary folder). */
  archive?: boolean;
  /** The meter's GPU readings (a sampler over a fake nvidia-smi), on the harness's clock. */
  gpus?: (clock: ManualClock) => LeaseEngineDeps['gpus'];
}

/**
 * One lease engine over the in-memory backend, a SQLite store in memory, a real ledger and a
 * manual clock: no Docker, no chain. `restart()` builds a new engine over the same store and
 * backend, as a daemon that was killed and started again would.
 */
export class EngineHarness {
  readonly clock: ManualClock = manualClock(T0 * 1000);
  readonly store: Store = openStore(':memory:');
  readonly backend: MemoryBackend;
  readonly settlement = new FakeSettlement();
  readonly config: ProviderConfig;
  ledger: AllocationLedger;
  engine: LeaseEngine;
  readonly archive: LogArchive | undefined;
  private block = 1;

  constructor(private readonly options: HarnessOptions = {}) {
    this.config = configSchema.parse({
      dataDir: '/nonexistent/provider-engine-test',
      metering: { sampleIntervalSeconds: 5 },
      settlement: { checkpointIntervalSeconds: 3_600 },
      runtime: { stopTimeoutSeconds: 0 },
      ...options.config,
    });
    this.backend = new MemoryBackend({ clock: this.clock, program: options.program as never, callTimeoutMs: options.callTimeoutMs ?? 10_000, keepsFinalCounters: options.keepsFinalCounters });
    this.ledger = this.newLedger();
    this.archive = options.archive
      ? new LogArchive({ dir: tempDir('provider-archive-'), settings: () => this.config.logArchive, clock: this.clock, log: silentLogger() })
      : undefined;
    this.engine = this.newEngine();
  }

  private newLedger(): AllocationLedger {
    return new AllocationLedger(anAllocatable(), this.clock, { quoteGraceMs: 60_000 });
  }

  private newEngine(): LeaseEngine {
    return new LeaseEngine({
      gpus: this.options.gpus?.(this.clock),
      config: this.config,
      store: this.store,
      ledger: this.ledger,
      admission: { registryAuth: () => undefined, forgetCredentials: () => undefined },
      backend: this.backend,
      settlement: this.settlement,
      provider: PROVIDER,
      instanceId: 'ptest',
      clock: this.clock,
      log: silentLogger(),
      ...(this.archive ? { logArchive: this.archive } : {}),
      // Real-time bounds, short: a hung backend call or stop is given up on in a test's time.
      timeouts: { backendMs: 200, stopGraceMs: 200, confirmWaitMs: 0 },
    });
  }

  start(): Promise<void> {
    return this.engine.start();
  }

  /** The daemon is killed (its loops stop, nothing is flushed) and started again on the same store and backend. */
  async restart(): Promise<void> {
    await this.engine.stop();
    this.ledger = this.newLedger();
    this.engine = this.newEngine();
    await this.engine.start();
  }

  stop(): Promise<void> {
    return this.engine.stop();
  }

  /** Our quote for `manifest`, held in the ledger, as Admission would have stored it. */
  quote(nonce: string, manifest: ManifestInput = aManifest(), gpuUuids: string[] = []): void {
    const allocation = { cpuMillis: manifest.resources.cpuMillis, memoryBytes: manifest.resources.memoryBytes, diskBytes: 0, gpuUuids, gpuModels: gpuUuids.map(() => 'fake'), hostPorts: [] };
    this.store.quotes.insert({
      nonce,
      quoteHash: `0x${nonce.padStart(64, '0')}`,
      tenant: TENANT,
      manifest: manifest as unknown as Record<string, unknown>,
      manifestHash: MANIFEST_HASH,
      quote: { provider: PROVIDER, tenant: TENANT, manifestHash: MANIFEST_HASH, rates: RATES, allocation: { ...ALLOCATION, gpuCount: BigInt(gpuUuids.length) }, maxDuration: 600n, expiresAt: BigInt(T0 + 600), nonce: BigInt(nonce) },
      signature: '0x',
      allocation,
      expiresAt: T0 + 600,
      state: 'open',
      createdAt: T0,
    });
    this.ledger.reserve({ holder: quoteHolder(nonce), cpuMillis: allocation.cpuMillis, memoryBytes: allocation.memoryBytes, diskBytes: 0, gpus: { count: 0 }, expiresAt: (T0 + 600) * 1000 });
  }

  /**
   * The marketplace says the tenant opened lease `leaseId` with quote `nonce`. The inbox finds the
   * quote by the id's low 96 bits (leaseIdOf), so a small id is its own nonce: `nonce` must equal it.
   */
  open(leaseId: string, nonce: string, terms: { deposit?: bigint; maxDuration?: number; manifestHash?: string } = {}): void {
    if (quoteNonceOf(BigInt(leaseId)) !== BigInt(nonce)) throw new Error(`lease ${leaseId} is not opened with quote ${nonce}: its low 96 bits are the nonce`);
    this.engine.onChainEvents([
      this.event('LeaseOpened', {
        leaseId: BigInt(leaseId),
        provider: PROVIDER,
        tenant: TENANT,
        manifestHash: terms.manifestHash ?? MANIFEST_HASH,
        maxDuration: BigInt(terms.maxDuration ?? 600),
        terms: {
          provider: PROVIDER,
          tenant: TENANT,
          startedAt: BigInt(Math.floor(this.clock.now() / 1000)),
          deposit: terms.deposit ?? 10n ** 18n,
          rates: RATES,
          allocation: this.store.quotes.get(nonce)?.quote.allocation ?? ALLOCATION,
        },
      }),
    ]);
  }

  /** The tenant closed the lease on-chain, now. */
  close(leaseId: string): void {
    this.engine.onChainEvents([this.event('LeaseClosed', { leaseId: BigInt(leaseId), by: TENANT, end: BigInt(Math.floor(this.clock.now() / 1000)) })]);
  }

  private event(name: string, args: Record<string, unknown>): MarketplaceEvent {
    const block = this.block++;
    return { name, args, blockNumber: block, blockHash: `0x${'0'.repeat(64)}`, transactionHash: `0x${'0'.repeat(64)}`, logIndex: 0 } as unknown as MarketplaceEvent;
  }

  lease(leaseId: string): StoredLease {
    const lease = this.store.leases.get(leaseId);
    if (!lease) throw new Error(`no lease ${leaseId}`);
    return lease;
  }

  runtimeId(leaseId: string): string {
    return `ptest-${leaseId}`;
  }

  /** Waits (real time, bounded) until the lease is in `state`. */
  reach(leaseId: string, state: LeaseState, timeoutMs = 5_000): Promise<StoredLease> {
    return until(`lease ${leaseId} ${state} (it was ${this.store.leases.get(leaseId)?.state} when the wait began)`, () => {
      const lease = this.store.leases.get(leaseId);
      return lease?.state === state ? lease : undefined;
    }, timeoutMs, 5);
  }

  /** Moves the clock one metering interval once the meter sleeps on it. */
  async meterTick(): Promise<void> {
    await until('the meter to sleep', () => this.clock.pendingSleeps > 0, 5_000, 5);
    this.clock.advance(this.config.metering.sampleIntervalSeconds * 1000);
  }

  held(): string[] {
    return this.ledger.list().map((a) => a.holder).sort();
  }

  transitions(leaseId: string): string[] {
    return this.store.leases.transitions(leaseId).map((t) => t.toState);
  }
}

export function aManifest(overrides: Partial<ManifestInput> = {}): ManifestInput {
  return { image: 'provider-test/busybox:latest', resources: { cpuMillis: 1000, memoryBytes: 64 * 2 ** 20 }, maxDurationSeconds: 600, ...overrides };
}
