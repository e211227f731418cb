import { getAddress, verifyTypedData, type TypedDataDomain } from 'ethers';
import type {
  CheckpointView,
  DaemonStatus,
  ReachabilityView,
  GpuHealthStatusView,
  GpuModelOffer,
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
} from '../api';
import type { SignedBenchmarks } from '../benchmark';
import type { AllocationLedger } from '../capacity';
import { CHECKPOINT_TYPES, decodeMarketplaceLog, tokenAt, type ChainClient, type TxOutcome } from '../chain';
import type { ProviderConfig } from '../config';
import { ProviderError, isProviderError } from '../errors';
import type { Admission, LeaseEngine, LeaseState, EndReason } from '../leases';
import { LIVE_STATES, TERMINAL_STATES } from '../vocabulary';

import type { LeaseBackend, LogArchive, Manifest } from '../runtime';
import { toCheckpoint, usageProofs, type Settler } from '../settlement';
import type { Store, StoredCheckpoint, StoredLease } from '../store';
import type { Clock } from '../util/clock';
import { leaseCounts, leaseDetail, leaseSummaries, storeEarnings } from './operator-views';

export interface ProviderServiceDeps {
  config: ProviderConfig;
  store: Store;
  ledger: AllocationLedger;
  admission: Admission;
  engine: LeaseEngine;
  backend: LeaseBackend;
  settler: Settler;
  chain: ChainClient;
  domain: TypedDataDomain;
  provider: string;
  devnet: boolean;
  version: string;
  startedAt: number;
  clock: Clock;
  /** The follower's stored cursor. */
  cursorBlock: () => number | undefined;
  /** How tenants reach the API; decided after the API listens, so read at each status. */
  reachability?: () => ReachabilityView | null;
  /** The certificate pin now (a renewal changes it). */
  tlsSha256?: () => string | null;
  /** Logs of leases whose container is removed. */
  logArchive?: LogArchive;
  /** The GPU models on this machine and each GPU's health (the health monitor's view). */
  gpus: { catalogue: () => GpuModelOffer[]; health: () => GpuHealthStatusView[] };
  /** The signed GPU benchmark to publish (read from the data dir); none when absent. */
  benchmarks?: () => Promise<SignedBenchmarks | null>;
}

/** The longest a tenant's or operator's view waits on the backend before it answers without it. */
const STATUS_TIMEOUT_MS = 10_000;

/**
 * The lease engine as the provider API sees it (src/api/service.ts). It lives in the daemon layer
 * so the engine never depends on the API; it holds no state of its own.
 */
export class EngineProviderService implements ProviderService {
  constructor(private readonly deps: ProviderServiceDeps) {}

  async offer(): Promise<Offer> {
    const { config, ledger, chain, provider } = this.deps;
    const free = ledger.free();
    const groups = new Map<string, Offer['free']['gpus'][number]>();
    for (const gpu of free.gpus) {
      const key = `${gpu.model}|${gpu.profile ?? ''}`;
      const group = groups.get(key) ?? { model: gpu.model, profile: gpu.profile, memoryBytes: gpu.memoryBytes, count: 0 };
      group.count += 1;
      groups.set(key, group);
    }
    const p = config.pricing;
    return {
      provider,
      chainId: chain.settings.chainId,
      marketplace: chain.settings.marketplaceAddress,
      region: config.region,
      accepting: this.deps.engine.isAccepting,
      free: { cpuMillis: free.cpuMillis, memoryBytes: free.memoryBytes, diskBytes: free.diskBytes, gpus: [...groups.values()] },
      rateCard: {
        perLeaseSecond: p.perLeaseSecond,
        perCpuSecond: p.perCpuSecond,
        perGiBMemorySecond: p.perGiBMemorySecond,
        perGpuSecond: p.perGpuSecond,
        perGpuSecondByModel: { ...p.perGpuSecondByModel },
        perGiBEgress: p.perGiBEgress,
        minimumPerLease: p.minimumPerLease,
      },
      maxLeaseDurationSeconds: config.admission.maxLeaseDurationSeconds,
      gpuModels: this.deps.gpus.catalogue(),
      benchmarks: (await this.deps.benchmarks?.()) ?? null,
    };
  }

  async quote(tenant: string, manifest: Manifest): Promise<QuoteResponse> {
    const admitted = await this.deps.admission.quote(tenant, manifest);
    const a = admitted.allocation;
    return {
      quote: admitted.quote,
      signature: admitted.signature,
      quoteHash: admitted.quoteHash,
      allocation: { cpuMillis: a.cpuMillis, memoryBytes: a.memoryBytes, diskBytes: a.diskBytes, gpuModels: a.gpuModels },
      image: { reference: admitted.image.reference, digest: admitted.image.digest, source: admitted.image.source },
    };
  }

  private leaseFor(leaseId: string, tenant: string): StoredLease {
    const lease = /^\d{1,78}$/.test(leaseId) ? this.deps.store.leases.get(BigInt(leaseId).toString()) : undefined;
    if (!lease) throw new ProviderError('LEASE_NOT_FOUND', `no lease ${leaseId.slice(0, 80)} with this provider`, { input: leaseId.slice(0, 80) });
    if (getAddress(lease.tenant) !== getAddress(tenant)) {
      throw new ProviderError('AUTH_FORBIDDEN', `lease ${lease.leaseId} belongs to another tenant`, { input: lease.leaseId });
    }
    return lease;
  }

  async lease(leaseId: string, tenant: string): Promise<LeaseView> {
    const lease = this.leaseFor(leaseId, tenant);
    const quote = lease.quoteNonce ? this.deps.store.quotes.get(lease.quoteNonce) : undefined;
    let container: LeaseView['container'] = null;
    let ports: LeaseView['ports'] = [];
    if (lease.containerId) {
      try {
        const status = await this.deps.backend.status(lease.runtimeId, { signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
        container = { running: status.running, status: status.state, exitCode: status.exit?.exitCode ?? null, oomKilled: status.exit?.oomKilled ?? false };
        ports = status.ports;
      } catch (err) {
        if (!isProviderError(err, 'CONTAINER_NOT_FOUND')) throw err;
      }
    }
    if (ports.length === 0 && quote) {
      const asked = (quote.manifest.ports as { containerPort: number; protocol: 'tcp' | 'udp' }[] | undefined) ?? [];
      ports = asked.map((p, i) => ({ containerPort: p.containerPort, protocol: p.protocol, hostPort: quote.allocation.hostPorts[i] as number }));
    }
    const last = this.deps.store.checkpoints.forLease(lease.leaseId).at(-1);
    return {
      leaseId: lease.leaseId,
      tenant: lease.tenant,
      state: lease.state as LeaseState,
      endReason: (lease.endReason ?? null) as EndReason | null,
      manifestHash: lease.manifestHash,
      openedAt: lease.openedAt,
      startedAt: lease.startedAt,
      endedAt: lease.endedAt,
      container,
      ports,
      lastCheckpoint: last ? checkpointView(last) : null,
    };
  }

  async usage(leaseId: string, tenant: string): Promise<UsageView> {
    const lease = this.leaseFor(leaseId, tenant);
    const checkpoints = this.deps.store.checkpoints.forLease(lease.leaseId);
    const latest = checkpoints.at(-1);
    // Records up to the latest checkpoint, each with its proof against that checkpoint's root;
    // newer records are shown once a checkpoint covers them.
    const records = latest ? this.deps.store.usage.forLease(lease.leaseId).slice(0, Number(latest.recordCount)) : [];
    return { leaseId: lease.leaseId, rates: lease.rates, records: usageProofs(records), checkpoints: checkpoints.map(checkpointView), gpus: this.deps.store.usage.gpuForLease(lease.leaseId) };
  }

  async countersign(leaseId: string, seq: number, tenant: string, signature: string): Promise<CheckpointView> {
    const lease = this.leaseFor(leaseId, tenant);
    const cp = this.deps.store.checkpoints.get(lease.leaseId, seq);
    if (!cp) throw new ProviderError('CHECKPOINT_NOT_FOUND', `lease ${lease.leaseId} has no checkpoint ${seq}`, { input: seq });
    let signer: string | undefined;
    try {
      signer = verifyTypedData(this.deps.domain, CHECKPOINT_TYPES, toCheckpoint(cp), signature);
    } catch {
      signer = undefined;
    }
    if (signer !== getAddress(lease.tenant)) {
      throw new ProviderError('COUNTERSIGNATURE_INVALID', `the signature is not the tenant's over checkpoint ${seq} of lease ${lease.leaseId}`, {
        input: 'signature',
        fix: 'sign exactly the checkpoint served (EIP-712 Checkpoint, the marketplace domain) with the tenant key',
      });
    }
    if (!cp.tenantSig) {
      this.deps.store.checkpoints.setTenantSignature(lease.leaseId, seq, signature);
      const stored = this.deps.store.checkpoints.get(lease.leaseId, seq) as StoredCheckpoint;
      // Redeem at once, unless a later checkpoint was already paid more (redeem would revert).
      const on = await this.deps.settler.chainLease(lease.leaseId).catch(() => undefined);
      if (!on || stored.cumulativeAmount > on.paid) {
        this.deps.settler.submitRedeem(lease, stored);
        this.deps.store.checkpoints.setStatus(lease.leaseId, seq, 'redeemed');
      }
    }
    return checkpointView(this.deps.store.checkpoints.get(lease.leaseId, seq) as StoredCheckpoint);
  }

  logs(leaseId: string, tenant: string, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry> {
    return this.containerLogs(this.leaseFor(leaseId, tenant), query, signal);
  }

  /**
   * From the archive once the lease has one (its container is removed, or about to be), else from
   * the backend; a container gone with no archive is LOGS_GONE for a lease that settled.
   */
  private async *containerLogs(lease: StoredLease, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry> {
    if (!lease.containerId) return;
    const archive = this.deps.logArchive;
    if (archive?.entry(lease.leaseId)) {
      for await (const line of archive.read(lease.leaseId, { tail: query.tail, since: query.since, signal })) {
        yield { stream: line.stream, time: line.time, line: line.text };
      }
      return;
    }
    try {
      for await (const line of this.deps.backend.logs(lease.runtimeId, { follow: query.follow, tail: query.tail, since: query.since, signal })) {
        yield { stream: line.stream, time: line.time, line: line.text };
      }
    } catch (err) {
      if (signal.aborted) return;
      if (isProviderError(err, 'CONTAINER_NOT_FOUND')) {
        // Removed between the look at the archive and the read (the archive has it now), or
        // settled with its logs lost or pruned: the archive says which (LOGS_GONE).
        const settled = TERMINAL_STATES.has(this.deps.store.leases.get(lease.leaseId)?.state ?? lease.state);
        if (archive && (settled || archive.entry(lease.leaseId))) {
          for await (const line of archive.read(lease.leaseId, { tail: query.tail, since: query.since, signal })) yield { stream: line.stream, time: line.time, line: line.text };
        }
        return;
      }
      throw err;
    }
  }

  async status(): Promise<DaemonStatus> {
    const leases = leaseCounts(this.deps.store);
    let reachable = true;
    try {
      await this.deps.backend.ping({ signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
    } catch {
      reachable = false;
    }
    const headBlock = await this.deps.chain.rpc.getBlockNumber().catch(() => null);
    return {
      version: this.deps.version,
      provider: this.deps.provider,
      chainId: this.deps.chain.settings.chainId,
      devnet: this.deps.devnet,
      accepting: this.deps.engine.isAccepting,
      startedAt: this.deps.startedAt,
      leases,
      docker: { reachable },
      chain: { headBlock, cursorBlock: this.deps.cursorBlock() ?? null },
      reachability: this.deps.reachability?.() ?? null,
      tlsSha256: this.deps.tlsSha256?.() ?? null,
      gpus: this.deps.gpus.health(),
    };
  }

  async operatorLeases(): Promise<OperatorLeaseSummary[]> {
    return leaseSummaries(this.deps.store);
  }

  async operatorLease(leaseId: string): Promise<OperatorLeaseDetail> {
    return leaseDetail(this.deps.store, leaseId);
  }

  operatorLogs(leaseId: string, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry> {
    const detail = leaseDetail(this.deps.store, leaseId);
    return this.containerLogs(this.deps.store.leases.get(detail.leaseId) as StoredLease, query, signal);
  }

  async earnings(): Promise<EarningsView> {
    const { store, settler, chain, provider } = this.deps;
    const paid = new Map<string, bigint>();
    // Settled leases are final in the store; ask the chain only about the ones still moving.
    const withCheckpoints = store.leases.list({ states: LIVE_STATES }).filter((l) => store.checkpoints.forLease(l.leaseId).length > 0);
    await Promise.all(
      withCheckpoints.map(async (l) => {
        const on = await settler.chainLease(l.leaseId).catch(() => undefined);
        if (on) paid.set(l.leaseId, on.paid);
      }),
    );
    const view = storeEarnings(store, paid);
    view.provider = provider;
    const account = await settler.account().catch(() => undefined);
    view.withdrawable = account?.earnings ?? null;
    view.payout = account?.payout ?? null;
    const tokenAddress = chain.settings.tokenAddress ?? (await chain.marketplace.read('token', []).catch(() => undefined));
    if (tokenAddress) {
      const token = tokenAt(tokenAddress, chain.rpc);
      const [decimals, symbol, balance] = await Promise.all([
        token.read('decimals', []).catch(() => null),
        token.read('symbol', []).catch(() => null),
        token.read('balanceOf', [provider]).catch(() => null),
      ]);
      view.token = { address: tokenAddress, decimals: decimals === null ? null : Number(decimals), symbol };
      view.balance = balance;
    }
    return view;
  }

  async withdraw(timeoutMs: number, signal?: AbortSignal): Promise<WithdrawResult> {
    const { settler, chain } = this.deps;
    const asked = await settler.withdrawNow();
    if (!asked) return { outcome: 'nothing', key: null, amount: 0n, txHash: null, error: null };
    // A shutdown ends the wait too: the transaction is in the outbox and goes on without us.
    const deadline = signal ? AbortSignal.any([AbortSignal.timeout(timeoutMs), signal]) : AbortSignal.timeout(timeoutMs);
    let outcome: TxOutcome;
    try {
      outcome = await chain.sender.waitFor(asked.key, { signal: deadline });
    } catch (err) {
      if (!deadline.aborted) throw err;
      return { outcome: 'pending', key: asked.key, amount: asked.earnings, txHash: null, error: null };
    }
    if (outcome.state !== 'confirmed') {
      return { outcome: outcome.state, key: asked.key, amount: asked.earnings, txHash: 'txHash' in outcome ? outcome.txHash : null, error: outcome.error };
    }
    return { outcome: 'confirmed', key: asked.key, amount: (await this.withdrawnIn(outcome.txHash)) ?? asked.earnings, txHash: outcome.txHash, error: null };
  }

  /** The amount of this provider's Withdrawn event in a transaction's receipt. */
  private async withdrawnIn(txHash: string): Promise<bigint | undefined> {
    const receipt = await this.deps.chain.rpc.getTransactionReceipt(txHash).catch(() => null);
    for (const log of receipt?.logs ?? []) {
      const event = decodeMarketplaceLog(this.deps.chain.marketplace, log);
      if (event?.name === 'Withdrawn' && getAddress(event.args.provider) === getAddress(this.deps.provider)) return event.args.amount;
    }
    return undefined;
  }
}

export function checkpointView(cp: StoredCheckpoint): CheckpointView {
  return { seq: Number(cp.seq), checkpoint: toCheckpoint(cp), providerSignature: cp.providerSig, tenantSignature: cp.tenantSig, status: cp.status };
}

