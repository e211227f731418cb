import { getAddress, verifyTypedData, type TypedDataDomain } from 'ethers';
import type { CheckpointView, DaemonStatus, LeaseView, LogEntry, LogQuery, Offer, ProviderService, QuoteResponse, UsageView } from '../api';
import type { AllocationLedger } from '../capacity';
import { CHECKPOINT_TYPES, type ChainClient } from '../chain';
import type { ProviderConfig } from '../config';
import { ProviderError, isProviderError } from '../errors';
import type { Admission, LeaseEngine, LeaseState, EndReason } from '../leases';

import type { LeaseRuntime, Manifest } from '../runtime';
import { toCheckpoint, usageProofs, type Settler } from '../settlement';
import type { LeaseStore, StoredCheckpoint, StoredLease } from '../store';
import type { Clock } from '../util/clock';

export interface ProviderServiceDeps {
  config: ProviderConfig;
  store: LeaseStore;
  ledger: AllocationLedger;
  admission: Admission;
  engine: LeaseEngine;
  runtime: LeaseRuntime;
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
}

const ALL_STATES: LeaseState[] = ['quoted', 'opened', 'pulling', 'running', 'stopping', 'settled', 'failed', 'rejected', 'expired'];

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
    };
  }

  private leaseFor(leaseId: string, tenant: string): StoredLease {
    const lease = /^\d{1,78}$/.test(leaseId) ? this.deps.store.lease(BigInt(leaseId).toString()) : undefined;
    if (!lease) throw new ProviderError('LEASE_NOT_FOUND', `no lease ${leaseId.slice(0, 80)} with this provider`, { input: leaseId.slice(0, 80) });
    if (getAddress(lease.tenant) !== getAddress(tenant)) {
      throw new ProviderError('AUTH_FORBIDDEN', `lease ${lease.leaseId} belongs to another tenant`, { input: lease.leaseId });
    }
    return lease;
  }

  async lease(leaseId: string, tenant: string): Promise<LeaseView> {
    const lease = this.leaseFor(leaseId, tenant);
    const quote = lease.quoteNonce ? this.deps.store.quote(lease.quoteNonce) : undefined;
    let container: LeaseView['container'] = null;
    let ports: LeaseView['ports'] = [];
    if (lease.containerId) {
      try {
        const status = await this.deps.runtime.status(lease.runtimeId);
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
    const last = this.deps.store.checkpoints(lease.leaseId).at(-1);
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
    const checkpoints = this.deps.store.checkpoints(lease.leaseId);
    const latest = checkpoints.at(-1);
    // Records up to the latest checkpoint, each with its proof against that checkpoint's root;
    // newer records are shown once a checkpoint covers them.
    const records = latest ? this.deps.store.usageRecords(lease.leaseId).slice(0, latest.recordCount) : [];
    return { leaseId: lease.leaseId, rates: lease.rates, records: usageProofs(records), checkpoints: checkpoints.map(checkpointView) };
  }

  async countersign(leaseId: string, seq: number, tenant: string, signature: string): Promise<CheckpointView> {
    const lease = this.leaseFor(leaseId, tenant);
    const cp = this.deps.store.checkpoint(lease.leaseId, seq);
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
      this.deps.store.setTenantSignature(lease.leaseId, seq, signature);
      const stored = this.deps.store.checkpoint(lease.leaseId, seq) as StoredCheckpoint;
      // Redeem at once, unless a later checkpoint was already paid more (redeem would revert).
      const on = await this.deps.settler.chainLease(lease.leaseId).catch(() => undefined);
      if (!on || stored.cumulativeAmount > on.paid) {
        this.deps.settler.submitRedeem(stored);
        this.deps.store.setCheckpointStatus(lease.leaseId, seq, 'redeemed');
      }
    }
    return checkpointView(this.deps.store.checkpoint(lease.leaseId, seq) as StoredCheckpoint);
  }

  async *logs(leaseId: string, tenant: string, query: LogQuery, signal: AbortSignal): AsyncIterable<LogEntry> {
    const lease = this.leaseFor(leaseId, tenant);
    if (!lease.containerId) return;
    try {
      for await (const line of this.deps.runtime.logs(lease.runtimeId, { follow: query.follow, tail: query.tail, since: query.since, signal })) {
        yield { stream: line.stream, time: line.time, line: line.text };
      }
    } catch (err) {
      if (isProviderError(err, 'CONTAINER_NOT_FOUND') || signal.aborted) return;
      throw err;
    }
  }

  async status(): Promise<DaemonStatus> {
    const counts = this.deps.store.countByState();
    const leases = Object.fromEntries(ALL_STATES.map((s) => [s, counts[s] ?? 0])) as Record<LeaseState, number>;
    let reachable = true;
    try {
      await this.deps.runtime.list();
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
    };
  }
}

export function checkpointView(cp: StoredCheckpoint): CheckpointView {
  return { checkpoint: toCheckpoint(cp), providerSignature: cp.providerSig, tenantSignature: cp.tenantSig, status: cp.status };
}

