import type { CheckpointView, LeaseView, LogEntry, Offer, UsageView } from '../../../src/api';
import { ZERO_BYTES32, type Allocation, type Rates, type UsageRecord } from '../../../src/chain';
import { ProviderError } from '../../../src/errors';
import { manifestSchema, type ManifestInput } from '../../../src/runtime';
import { LogDigest, resultDigest } from '../../../src/settlement';
import type { SelftestTenant } from '../../../src/selftest';
import type { LeaseOnChain, OpenedLease, VerifiedQuote } from '../../../src/tenant';

const TENANT = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
const PROVIDER = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const SIGNATURE = `0x${'11'.repeat(65)}`;
const STARTED_AT = 1_800_000_000n;
const RATES: Rates = { perSecond: 10n, perCpuSecond: 1000n, perGpuSecond: 5000n, perGiBEgress: 0n };
/** What the daemon commits for `manifest` (leaseAllocation), without egress. */
const allocationOf = (manifest: ManifestInput): Allocation => ({ cpuMillicores: BigInt(manifest.resources.cpuMillis), gpuCount: BigInt(manifest.resources.gpus?.count ?? 0), egressBytesPerSecond: 0n });

export function anOffer(overrides: { gpus?: Offer['free']['gpus']; accepting?: boolean; cpuMillis?: number } = {}): Offer {
  return {
    provider: PROVIDER,
    chainId: 31337,
    marketplace: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
    region: 'test',
    accepting: overrides.accepting ?? true,
    free: { cpuMillis: overrides.cpuMillis ?? 2000, memoryBytes: 2 ** 32, diskBytes: 2 ** 34, gpus: overrides.gpus ?? [] },
    rateCard: { perLeaseSecond: '10', perCpuSecond: '1000', perGiBMemorySecond: '0', perGpuSecond: '5000', perGpuSecondByModel: {}, perGiBEgress: '0', minimumPerLease: '0' },
    maxLeaseDurationSeconds: 86_400,
    gpuModels: [],
    benchmarks: null,
  };
}

/**
 * An honest provider in memory, answering as the protocol client would after its checks: what
 * each lease printed is derived from the manifest it was quoted (the marker line of the script, a
 * GPU line when it asks for a GPU), and each part can be broken by a test.
 */
export class FakeTenant implements SelftestTenant {
  offerResult: Offer | Error = anOffer();
  openError: Error | undefined;
  quoteError: Error | undefined;
  /** Delay before open resolves: longer than the test's timeout makes the step time out. */
  openDelayMs = 0;
  /** Lease states reported by lease(), in turn; the last one repeats. */
  states: LeaseView['state'][] = ['pulling', 'running'];
  exitCode = 0;
  endReason: LeaseView['endReason'] = 'exited';
  /** Replaces the log lines a lease prints. */
  logLines: ((printed: LogEntry[]) => LogEntry[]) | undefined;
  cpuMillis = 700n;
  /** Alters the final checkpoint's result digest. */
  digestOverride: string | undefined;
  paid: (owed: bigint) => bigint = (owed) => owed;
  /** The lease was closed on-chain (by the daemon) before the selftest's close. */
  closedOnChain = false;

  readonly quoted: ManifestInput[] = [];
  readonly opened: bigint[] = [];
  readonly closed: bigint[] = [];
  readonly countersigned: [bigint, bigint][] = [];
  private leases = new Map<bigint, { manifest: ManifestInput; polls: number; deposit: bigint }>();
  private nextLease = 1n;

  address(): Promise<string> {
    return Promise.resolve(TENANT);
  }

  offer(): Promise<Offer> {
    return this.offerResult instanceof Error ? Promise.reject(this.offerResult) : Promise.resolve(this.offerResult);
  }

  quote(manifest: ManifestInput): Promise<VerifiedQuote> {
    this.quoted.push(manifest);
    if (this.quoteError) return Promise.reject(this.quoteError);
    const nonce = BigInt(this.quoted.length);
    return Promise.resolve({
      quote: {
        provider: PROVIDER,
        tenant: TENANT,
        manifestHash: ZERO_BYTES32,
        rates: RATES,
        allocation: allocationOf(manifest),
        maxDuration: BigInt(manifest.maxDurationSeconds),
        expiresAt: STARTED_AT + 60n,
        nonce,
      },
      signature: SIGNATURE,
      quoteHash: ZERO_BYTES32,
      allocation: { cpuMillis: manifest.resources.cpuMillis, memoryBytes: manifest.resources.memoryBytes, diskBytes: 0, gpuModels: [] },
      image: { reference: manifest.image, digest: `sha256:${'0'.repeat(64)}`, source: 'local' },
      manifest: manifestSchema.parse(manifest),
    });
  }

  async open(quote: VerifiedQuote, deposit: bigint): Promise<OpenedLease> {
    if (deposit <= 0n) throw new Error('zero deposit');
    if (this.openError) throw this.openError;
    if (this.openDelayMs > 0) await new Promise((r) => setTimeout(r, this.openDelayMs));
    const leaseId = this.nextLease++;
    this.leases.set(leaseId, { manifest: quote.manifest, polls: 0, deposit });
    this.opened.push(leaseId);
    return { leaseId, txHash: `0x${'ab'.repeat(32)}`, startedAt: STARTED_AT };
  }

  lease(leaseId: bigint | string): Promise<LeaseView> {
    const lease = this.get(leaseId);
    const state = this.states[Math.min(lease.polls, this.states.length - 1)] ?? 'running';
    lease.polls += 1;
    const ran = state === 'running' || state === 'stopping' || state === 'finishing' || state === 'settling' || state === 'settled';
    const ended = lease.polls > this.states.length;
    return Promise.resolve({
      leaseId: String(leaseId),
      tenant: TENANT,
      state: ended && ran ? 'settling' : state,
      endReason: ended && ran ? this.endReason : state === 'failed' ? 'pull-failed' : null,
      manifestHash: ZERO_BYTES32,
      openedAt: Number(STARTED_AT),
      startedAt: ran ? Number(STARTED_AT) + 1 : null,
      endedAt: null,
      container: ran ? { running: !ended, status: ended ? 'exited' : 'running', exitCode: ended ? this.exitCode : null, oomKilled: false } : null,
      ports: [],
      lastCheckpoint: null,
    });
  }

  async *logs(leaseId: bigint | string): AsyncGenerator<LogEntry> {
    for (const entry of this.printed(leaseId)) yield entry;
  }

  usage(leaseId: bigint | string): Promise<UsageView> {
    const lease = this.get(leaseId);
    const gpu = (lease.manifest.resources.gpus?.count ?? 0) > 0;
    // Not priced by the formula: the fake's verifyUsage trusts it, and the tests name this amount.
    const record: UsageRecord = {
      leaseId: BigInt(leaseId),
      index: 0n,
      t0: STARTED_AT,
      t1: STARTED_AT + 4n,
      cpuMillis: this.cpuMillis,
      memoryByteSeconds: 1n,
      gpuMillis: gpu ? 4000n : 0n,
      rxBytes: 0n,
      txBytes: 0n,
      amount: 777n,
      total: 777n,
    };
    const digest = new LogDigest();
    for (const l of this.printed(leaseId)) digest.add(l.stream, l.line);
    const checkpoint: CheckpointView = {
      seq: 1,
      checkpoint: {
        leaseId: BigInt(leaseId),
        usageRoot: `0x${'22'.repeat(32)}`,
        recordCount: 1n,
        cumulativeAmount: record.total,
        periodEnd: record.t1,
        resultDigest: this.digestOverride ?? resultDigest(this.exitCode, digest.digest()),
      },
      providerSignature: SIGNATURE,
      tenantSignature: null,
      status: 'signed',
    };
    return Promise.resolve({ leaseId: String(leaseId), rates: RATES, records: [{ record, proof: [] }], checkpoints: [checkpoint], gpus: [] });
  }

  async verifyUsage(view: UsageView): Promise<{ latest: CheckpointView; total: bigint; coveredUntil: bigint }> {
    const latest = view.checkpoints.at(-1)!;
    return { latest, total: latest.checkpoint.cumulativeAmount, coveredUntil: view.records.at(-1)!.record.t1 };
  }

  async countersign(leaseId: bigint | string, seq: bigint | number): Promise<CheckpointView> {
    this.countersigned.push([BigInt(leaseId), BigInt(seq)]);
    const view = await this.usage(leaseId);
    return { ...view.checkpoints[0]!, tenantSignature: SIGNATURE };
  }

  close(leaseId: bigint | string): Promise<{ txHash: string; closedAt: bigint }> {
    this.closed.push(BigInt(leaseId));
    return Promise.resolve({ txHash: `0x${'cd'.repeat(32)}`, closedAt: STARTED_AT + 5n });
  }

  leaseOnChain(leaseId: bigint): Promise<LeaseOnChain> {
    const lease = this.get(leaseId);
    const closed = this.closedOnChain || this.closed.includes(leaseId);
    return Promise.resolve({
      terms: { provider: PROVIDER, tenant: TENANT, startedAt: STARTED_AT, deposit: lease.deposit, rates: RATES, allocation: allocationOf(lease.manifest) },
      end: closed ? STARTED_AT + 5n : STARTED_AT + BigInt(lease.manifest.maxDurationSeconds),
      paid: this.paid(777n),
      pending: 0n,
      payableAt: 0n,
      claimDigest: ZERO_BYTES32,
    });
  }

  private printed(leaseId: bigint | string): LogEntry[] {
    const { manifest } = this.get(leaseId);
    const script = manifest.command?.[2] ?? '';
    const marker = /echo '(selftest [0-9a-f]+)'/.exec(script)?.[1] ?? 'no marker';
    const time = '2026-01-01T00:00:00.000Z';
    const lines: LogEntry[] = [{ stream: 'stdout', time, line: marker }];
    if ((manifest.resources.gpus?.count ?? 0) > 0) lines.push({ stream: 'stdout', time, line: 'GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-1)' });
    else lines.push({ stream: 'stdout', time, line: 'selftest done' });
    return this.logLines ? this.logLines(lines) : lines;
  }

  private get(leaseId: bigint | string): { manifest: ManifestInput; polls: number; deposit: bigint } {
    const lease = this.leases.get(BigInt(leaseId));
    if (!lease) throw new ProviderError('LEASE_NOT_FOUND', `no lease ${leaseId}`);
    return lease;
  }
}
