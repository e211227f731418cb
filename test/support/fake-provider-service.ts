import { getAddress, verifyTypedData, type Signer, type TypedDataDomain } from 'ethers';
import type {
  CheckpointView,
  DaemonStatus,
  EarningsView,
  LeaseView,
  LogEntry,
  LogQuery,
  Offer,
  OperatorLeaseDetail,
  OperatorLeaseSummary,
  ProviderService,
  QuoteResponse,
  UsageView,
  WithdrawResult,
} from '../../src/api';
import { CHECKPOINT_TYPES, ZERO_BYTES32, hashQuote, manifestHash, signQuote, type Allocation, type MeteredUsage, type Quote, type Rates } from '../../src/chain';
import { ProviderError } from '../../src/errors';
import type { Manifest } from '../../src/runtime';
import { recordsOf, signedUsageView } from './usage-view';

/**
 * An in-memory ProviderService for API and tenant-client tests: real EIP-712 quotes and
 * checkpoints signed by a real provider key, leases and logs put in by the test. Not the engine:
 * it admits by two simple rules (GPU count, an `evil/` image prefix) so refusals can be asserted.
 */

export const FAKE_RATES: Rates = { perSecond: 1_000n, perCpuSecond: 2_000n, perGpuSecond: 50_000n, perGiBEgress: 1_000_000n };
/** The egress a quote grants a lease that asks for it (the config's runtime.egress.bytesPerSecond default). */
export const FAKE_EGRESS_BYTES_PER_SECOND = 125_000_000n;
/** What the operator's view says a lease put in by the test may use. */
export const FAKE_ALLOCATION: Allocation = { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: FAKE_EGRESS_BYTES_PER_SECOND };

export interface FakeLease {
  view: LeaseView;
  usage: UsageView | null;
  logs: LogEntry[];
  /** Follow mode ends when this is true (endLogs). */
  logsEnded: boolean;
  waiters: Set<() => void>;
}

export interface FakeServiceOptions {
  providerKey: Signer & { address: string };
  domain: TypedDataDomain;
  chainId: number;
  marketplace: string;
  gpus?: number;
  rates?: Rates;
  /** What a quote grants a lease that asks for egress; default FAKE_EGRESS_BYTES_PER_SECOND. */
  egressBytesPerSecond?: bigint;
  /** Unix seconds now; default Date.now(). */
  now?: () => number;
}

export class FakeProviderService implements ProviderService {
  readonly leases = new Map<string, FakeLease>();
  readonly quotes: QuoteResponse[] = [];
  /** Lets a test make the provider lie in its next quote. */
  tamperQuote: ((response: QuoteResponse) => QuoteResponse | Promise<QuoteResponse>) | undefined;
  /** Abort signals the log streams were given, to assert they are aborted. */
  readonly logSignals: AbortSignal[] = [];
  /** Log entries the streams have taken from this service, to see backpressure work. */
  logsYielded = 0;
  /** Finalised earnings `withdraw` pays out (and then zeroes); the withdraw timeouts asked for. */
  withdrawable = 0n;
  readonly withdrawWaits: number[] = [];
  private nonce = 1n;
  private gpusFree: number;

  constructor(private readonly options: FakeServiceOptions) {
    this.gpusFree = options.gpus ?? 1;
  }

  get rates(): Rates {
    return this.options.rates ?? FAKE_RATES;
  }

  private now(): number {
    return this.options.now ? this.options.now() : Math.floor(Date.now() / 1000);
  }

  async offer(): Promise<Offer> {
    return {
      provider: this.options.providerKey.address,
      chainId: this.options.chainId,
      marketplace: this.options.marketplace,
      region: 'test',
      accepting: true,
      free: { cpuMillis: 8_000, memoryBytes: 16 * 2 ** 30, diskBytes: 100 * 2 ** 30, gpus: [{ model: 'NVIDIA T4', profile: null, memoryBytes: 16 * 2 ** 30, count: this.gpusFree }] },
      rateCard: {
        perLeaseSecond: this.rates.perSecond.toString(),
        perCpuSecond: this.rates.perCpuSecond.toString(),
        perGiBMemorySecond: '0',
        perGpuSecond: this.rates.perGpuSecond.toString(),
        perGpuSecondByModel: {},
        perGiBEgress: this.rates.perGiBEgress.toString(),
        minimumPerLease: '0',
      },
      maxLeaseDurationSeconds: 86_400,
      gpuModels: [],
      benchmarks: null,
    };
  }

  async quote(tenant: string, manifest: Manifest): Promise<QuoteResponse> {
    if (manifest.image.startsWith('evil/')) throw new ProviderError('IMAGE_DENIED', `image ${manifest.image} is not allowed here`, { input: manifest.image });
    if (manifest.resources.gpus.count > this.gpusFree) {
      throw new ProviderError('CAPACITY_EXHAUSTED', `${manifest.resources.gpus.count} GPUs asked, ${this.gpusFree} free`);
    }
    this.gpusFree -= manifest.resources.gpus.count;
    const quote: Quote = {
      provider: this.options.providerKey.address,
      tenant,
      manifestHash: manifestHash(manifest),
      rates: this.rates,
      // As Admission commits it (leaseAllocation): what the manifest asked, egress only if it asked for it.
      allocation: {
        cpuMillicores: BigInt(manifest.resources.cpuMillis),
        gpuCount: BigInt(manifest.resources.gpus.count),
        egressBytesPerSecond: manifest.egress === 'none' ? 0n : (this.options.egressBytesPerSecond ?? FAKE_EGRESS_BYTES_PER_SECOND),
      },
      maxDuration: BigInt(manifest.maxDurationSeconds),
      expiresAt: BigInt(this.now() + 300),
      nonce: this.nonce++,
    };
    let response: QuoteResponse = {
      quote,
      signature: await signQuote(this.options.providerKey, this.options.domain, quote),
      quoteHash: hashQuote(this.options.domain, quote),
      allocation: { cpuMillis: manifest.resources.cpuMillis, memoryBytes: manifest.resources.memoryBytes, diskBytes: 0, gpuModels: [] },
      image: { reference: manifest.image, digest: `sha256:${'0'.repeat(64)}`, source: 'local' },
    };
    if (this.tamperQuote) response = await this.tamperQuote(response);
    this.quotes.push(response);
    return response;
  }

  addLease(leaseId: string, tenant: string, overrides: Partial<LeaseView> = {}): FakeLease {
    const lease: FakeLease = {
      view: {
        leaseId,
        tenant: getAddress(tenant),
        state: 'running',
        endReason: null,
        manifestHash: ZERO_BYTES32,
        openedAt: this.now(),
        startedAt: this.now(),
        endedAt: null,
        container: { running: true, status: 'running', exitCode: null, oomKilled: false },
        ports: [{ containerPort: 80, protocol: 'tcp', hostPort: 32080 }],
        lastCheckpoint: null,
        ...overrides,
      },
      usage: null,
      logs: [],
      logsEnded: false,
      waiters: new Set(),
    };
    this.leases.set(leaseId, lease);
    return lease;
  }

  /** Appends log lines to a lease, waking followers. */
  pushLogs(leaseId: string, ...lines: (string | LogEntry)[]): void {
    const lease = this.get(leaseId);
    for (const line of lines) {
      lease.logs.push(typeof line === 'string' ? { stream: 'stdout', time: new Date().toISOString(), line } : line);
    }
    for (const wake of lease.waiters) wake();
  }

  endLogs(leaseId: string): void {
    const lease = this.get(leaseId);
    lease.logsEnded = true;
    for (const wake of lease.waiters) wake();
  }

  /**
   * Honest usage for a lease: a record per measurement in `usage` (indexed, priced and totalled
   * here, as the meter does), a checkpoint after each record count in `checkpointAfter`, each
   * signed by the provider key, served as the daemon serves it.
   */
  async setUsage(leaseId: string, usage: readonly MeteredUsage[], checkpointAfter: number[] = [usage.length]): Promise<UsageView> {
    const records = recordsOf(BigInt(leaseId), this.rates, usage);
    const view = await signedUsageView(this.options.providerKey, this.options.domain, BigInt(leaseId), this.rates, records, checkpointAfter);
    const { checkpoints } = view;
    const lease = this.get(leaseId);
    lease.usage = view;
    lease.view.lastCheckpoint = checkpoints[checkpoints.length - 1] ?? null;
    return view;
  }

  async lease(leaseId: string, tenant: string): Promise<LeaseView> {
    return this.owned(leaseId, tenant).view;
  }

  async usage(leaseId: string, tenant: string): Promise<UsageView> {
    const lease = this.owned(leaseId, tenant);
    return lease.usage ?? { leaseId, rates: this.rates, records: [], checkpoints: [], gpus: [] };
  }

  async countersign(leaseId: string, seq: number, tenant: string, signature: string): Promise<CheckpointView> {
    const lease = this.owned(leaseId, tenant);
    const view = lease.usage?.checkpoints.find((c) => c.seq === seq);
    if (!view) throw new ProviderError('REQUEST_INVALID', `no checkpoint ${seq}`, { input: 'seq' });
    let signer: string | undefined;
    try {
      signer = verifyTypedData(this.options.domain, CHECKPOINT_TYPES, view.checkpoint, signature);
    } catch {
      signer = undefined;
    }
    if (signer !== getAddress(tenant)) throw new ProviderError('REQUEST_INVALID', 'signature is not the tenant\'s over this checkpoint', { input: 'signature' });
    view.tenantSignature = signature;
    return view;
  }

  logs(leaseId: string, tenant: string, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry> {
    return this.stream(this.owned(leaseId, tenant), query, signal);
  }

  async operatorLeases(): Promise<OperatorLeaseSummary[]> {
    return [...this.leases.values()].map((lease) => this.summary(lease.view));
  }

  async operatorLease(leaseId: string): Promise<OperatorLeaseDetail> {
    const { view } = this.get(leaseId);
    return {
      ...this.summary(view),
      deposit: 10n ** 18n,
      allocation: FAKE_ALLOCATION,
      maxDurationSeconds: 3_600,
      exitCode: view.container?.exitCode ?? null,
      closedAt: null,
      gpus: [],
      chainSettled: view.state === 'settled',
      transitions: [{ from: 'quoted', to: view.state, event: 'test', reason: 'put in by the test', at: view.openedAt ?? 0 }],
      checkpoints: (this.leases.get(leaseId)?.usage?.checkpoints ?? []).map((c) => ({
        seq: c.seq,
        cumulativeAmount: c.checkpoint.cumulativeAmount,
        periodEnd: Number(c.checkpoint.periodEnd),
        status: c.status,
        final: c.checkpoint.resultDigest !== ZERO_BYTES32,
        countersigned: c.tenantSignature !== null,
      })),
    };
  }

  operatorLogs(leaseId: string, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry> {
    return this.stream(this.get(leaseId), query, signal);
  }

  async earnings(): Promise<EarningsView> {
    const leases = [...this.leases.values()].map(({ view }) => ({
      leaseId: view.leaseId,
      state: view.state,
      earned: view.lastCheckpoint?.checkpoint.cumulativeAmount ?? 0n,
      checkpoint: view.lastCheckpoint?.status ?? null,
      paid: view.lastCheckpoint?.status === 'final' ? view.lastCheckpoint.checkpoint.cumulativeAmount : 0n,
    }));
    return {
      provider: this.options.providerKey.address,
      token: { address: this.options.marketplace, decimals: 18, symbol: 'TEST' },
      withdrawable: this.withdrawable,
      payout: this.options.providerKey.address,
      claimedPending: 0n,
      withdrawn: 0n,
      balance: 5n * 10n ** 17n,
      withdrawal: null,
      leases,
    };
  }

  async withdraw(timeoutMs: number, _signal?: AbortSignal): Promise<WithdrawResult> {
    this.withdrawWaits.push(timeoutMs);
    if (this.withdrawable === 0n) return { outcome: 'nothing', key: null, amount: 0n, txHash: null, error: null };
    const amount = this.withdrawable;
    this.withdrawable = 0n;
    return { outcome: 'confirmed', key: 'withdraw:1', amount, txHash: `0x${'ab'.repeat(32)}`, error: null };
  }

  private summary(view: LeaseView): OperatorLeaseSummary {
    const last = view.lastCheckpoint;
    return {
      leaseId: view.leaseId,
      tenant: view.tenant,
      state: view.state,
      endReason: view.endReason,
      image: 'provider-test/busybox:latest',
      container: `provider-lease-test-${view.leaseId}`,
      openedAt: view.openedAt ?? 0,
      startedAt: view.startedAt,
      endedAt: view.endedAt,
      earned: last?.checkpoint.cumulativeAmount ?? 0n,
      lastCheckpoint: last
        ? { seq: last.seq, status: last.status, final: last.checkpoint.resultDigest !== ZERO_BYTES32, countersigned: last.tenantSignature !== null }
        : null,
      detail: null,
    };
  }

  private async *stream(lease: FakeLease, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry> {
    this.logSignals.push(signal);
    const since = query.since;
    const wanted = lease.logs.filter((l) => since === undefined || Date.parse(l.time) / 1000 >= since);
    let next = query.tail === undefined ? 0 : Math.max(0, wanted.length - query.tail);
    let position = lease.logs.length - (wanted.length - next);
    for (;;) {
      while (position < lease.logs.length) {
        signal.throwIfAborted();
        const entry = lease.logs[position++];
        if (entry) {
          this.logsYielded += 1;
          yield entry;
        }
      }
      next = position;
      if (!query.follow || lease.logsEnded) return;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          lease.waiters.delete(wake);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        lease.waiters.add(wake);
        signal.addEventListener('abort', wake);
      });
      signal.throwIfAborted();
    }
  }

  async status(): Promise<DaemonStatus> {
    return {
      version: '0.1.0',
      provider: this.options.providerKey.address,
      chainId: this.options.chainId,
      devnet: true,
      accepting: true,
      startedAt: 1_700_000_000,
      leases: { quoted: 0, pulling: 0, starting: 0, running: this.leases.size, stopping: 0, finishing: 0, settling: 0, settled: 0, failed: 0, rejected: 0 },
      docker: { reachable: true },
      chain: { headBlock: 10, cursorBlock: 9 },
      reachability: null,
      gpus: [],
      tlsSha256: null,
    };
  }

  private get(leaseId: string): FakeLease {
    const lease = this.leases.get(leaseId);
    if (!lease) throw new ProviderError('LEASE_NOT_FOUND', `no lease ${leaseId}`);
    return lease;
  }

  private owned(leaseId: string, tenant: string): FakeLease {
    const lease = this.get(leaseId);
    if (getAddress(tenant) !== lease.view.tenant) throw new ProviderError('AUTH_FORBIDDEN', `lease ${leaseId} is not ${tenant}'s`);
    return lease;
  }
}
