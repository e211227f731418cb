import { randomBytes } from 'node:crypto';
import { Wallet, keccak256, toUtf8Bytes } from 'ethers';
import type { AddressInfo } from 'node:net';
import { AllocationLedger, createCapacityDetector, type CapacityReport } from '../capacity';
import {
  ChainClient,
  keystoreSettings,
  loadKeystore,
  marketplaceDomain,
  outcomeOf,
  tokenAt,
  type ChainSettings,
  type EventFollower,
  type Env,
} from '../chain';
import { ReloadableConfig, describeChange, type ProviderConfig, type ReloadOutcome } from '../config';
import { Devnet, devnetChainSettings } from '../devnet';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import { Admission, LeaseEngine, QUOTE_HOLD_GRACE_SECONDS, TERMINAL_STATES, type LeaseState } from '../leases';
import { LIVE_STATES } from '../vocabulary';
import { ContainerCounterReader, hostKernelFiles } from '../metering';
import { DockerBackend, Firewall, ImageService, LeaseRuntime, createDockerClient } from '../runtime';
import { claimKey, closeKey, redeemKey, Settler } from '../settlement';
import { openStore, storePathFor, type OutboxRepository, type Store } from '../store';
import type { Clock } from '../util/clock';
import { sleep } from '../util/sleep';
import type { Exec } from '../util/exec';
import { EngineProviderService } from './provider-service';
import { startApi, type RunningApi } from './api';
import { localApiUrl, localUrl } from '../api';

export interface DaemonOptions {
  config: ProviderConfig;
  log: Logger;
  env: Env;
  exec: Exec;
  clock: Clock;
  version: string;
  /** Aborts start-up (SIGINT while waiting for the chain). */
  signal?: AbortSignal;
  /** Told each start-up step as it begins (the terminal shows them; logs say them too). */
  onStep?: (step: string) => void;
}

export interface DrainOptions {
  /** How long running leases may go on before they are ended (operator-drain) and billed. */
  timeoutSeconds: number;
  /** Aborting skips what is left of the drain: leases not yet ended keep running. */
  signal?: AbortSignal;
  /** Told what the drain waits for, when that changes. */
  onProgress?: (message: string) => void;
}

export interface DrainResult {
  /** Leases that ended by themselves during the drain. */
  finished: string[];
  /** Leases the drain ended (operator-drain). */
  ended: string[];
  /** Ended leases whose final payment is on-chain (redeemed or claimed). */
  billed: string[];
  /** Leases still running or not yet billed when the drain gave up: the next start goes on with them. */
  left: string[];
}

export interface DaemonInfo {
  apiUrl: string;
  provider: string;
  chainId: number;
  marketplace: string;
  token: string | undefined;
  rpcUrl: string;
  devnet: boolean;
  /** Prefix of this data dir's lease containers (`provider-lease-<instanceId>-<leaseId>`). */
  instanceId: string;
  /** The devnet's funded dev tenant (public key material), for selftests; absent off the devnet. */
  devTenantKey?: string;
}

/** States in which a lease still runs, or is about to: a drain waits for these to end. */
const DRAINABLE: ReadonlySet<LeaseState> = new Set<LeaseState>(['quoted', 'pulling', 'starting', 'running']);
const DRAIN_POLL_MS = 500;

/** How long start-up waits for the provider's registration transaction. */
const REGISTRATION_TIMEOUT_MS = 180_000;

/**
 * The composition root: builds every module from the config, recovers, registers the provider
 * on-chain, serves the API, and runs the loops until `stop()`. Nothing else constructs modules.
 */
export class Daemon {
  private constructor(
    readonly info: DaemonInfo,
    /** What the API serves; in-process tests call it directly. */
    readonly service: EngineProviderService,
    private readonly parts: {
      devnet: Devnet | undefined;
      store: Store;
      chain: ChainClient;
      engine: LeaseEngine;
      api: RunningApi;
      live: ReloadableConfig;
      report: CapacityReport;
      signer: Wallet;
      apiUrl: string;
      settlementBound: () => number;
      clock: Clock;
      log: Logger;
    },
  ) {}

  static async start(options: DaemonOptions): Promise<Daemon> {
    const { log, env, exec, clock } = options;
    const live = new ReloadableConfig(options.config);
    // Every module gets the live view: pricing and admission follow SIGHUP reloads.
    const config = live.view;
    const step = (what: string): void => {
      options.onStep?.(what);
    };
    const cleanups: (() => Promise<void> | void)[] = [];
    const cleanup = async (): Promise<void> => {
      for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    };
    try {
      // ---- the chain and the provider key
      let settings: ChainSettings;
      let signer: Wallet;
      let devnet: Devnet | undefined;
      let devTenantKey: string | undefined;
      if (config.network) {
        step('unlocking the provider key');
        settings = { ...config.network };
        signer = await loadKeystore(keystoreSettings(config.keystore, config.dataDir), env);
      } else {
        step('starting the local devnet (anvil)');
        devnet = new Devnet({ dataDir: config.dataDir, ...config.devnet, log: log.child({ component: 'devnet' }), signal: options.signal });
        const info = await devnet.start();
        const started = devnet;
        cleanups.push(() => started.stop());
        settings = devnetChainSettings(info, config.devnet.blockTimeSeconds);
        signer = new Wallet(info.providerKey);
        devTenantKey = info.tenantKey;
      }
      const provider = signer.address;

      // ---- the store
      const store = openStore(storePathFor(config.dataDir, settings.chainId, settings.marketplaceAddress));
      cleanups.push(() => {
        store.close();
      });
      let instanceId = store.meta.get('instance-id');
      if (!instanceId) {
        instanceId = `p${randomBytes(4).toString('hex')}`;
        store.meta.set('instance-id', instanceId);
      }

      const chain = new ChainClient(settings, { signer, store, clock, log: log.child({ component: 'chain' }) });
      cleanups.push(() => chain.stop());
      step('connecting to the chain');
      log.info({ rpcUrl: devnet ? settings.rpcUrl : '[configured]', chainId: settings.chainId }, 'connecting to the chain');
      await chain.verify({ signal: options.signal, timeoutMs: 120_000 });

      // ---- capacity and the runtime
      step('detecting capacity');
      const report = await createCapacityDetector(config, { exec, env, clock }).detect(options.signal);
      for (const missing of report.notDetected) log.warn({ part: missing.part, code: missing.code }, missing.reason);
      const ledger = new AllocationLedger(report.allocatable, clock, { quoteGraceMs: QUOTE_HOLD_GRACE_SECONDS * 1000 });
      const docker = createDockerClient(config);
      const firewall = new Firewall(exec, log.child({ component: 'firewall' }));
      const images = new ImageService(docker, config, log.child({ component: 'images' }), clock);
      const runtime = new LeaseRuntime({ docker, firewall, images, config, log: log.child({ component: 'runtime' }), clock });
      const backend = new DockerBackend({ docker, runtime, images, counters: new ContainerCounterReader(hostKernelFiles()), config, clock, log: log.child({ component: 'backend' }) });

      // ---- the engine
      const domain = marketplaceDomain(settings.chainId, settings.marketplaceAddress);
      const window = await chain.marketplace.read('challengeWindow', []);
      let grace = config.settlement.countersignGraceSeconds;
      if (BigInt(grace) * 2n > window) {
        grace = Number(window / 3n);
        log.warn({ countersignGraceSeconds: config.settlement.countersignGraceSeconds, challengeWindow: Number(window), using: grace }, 'settlement.countersignGraceSeconds is too long for this marketplace\'s challenge window; using a third of the window');
      }
      const settler = new Settler({
        chain,
        store,
        signer,
        domain,
        clock,
        log: log.child({ component: 'settlement' }),
        settings: {
          countersignGraceSeconds: grace,
          withdrawIntervalSeconds: config.settlement.withdrawIntervalSeconds,
          withdrawThreshold: BigInt(config.settlement.withdrawThreshold),
        },
      });
      let engine: LeaseEngine | undefined;
      const admission = new Admission({
        config,
        ledger,
        store,
        signer,
        domain,
        provider,
        clock,
        log: log.child({ component: 'admission' }),
        accepting: () => engine?.isAccepting ?? false,
        portsInUse: () => portsInUse(store),
      });
      let follower: EventFollower | undefined;
      const confirmedTime = confirmedChainTime(chain, () => follower?.cursor(), clock);
      engine = new LeaseEngine({
        config,
        store,
        ledger,
        admission,
        backend,
        settlement: settler,
        provider,
        instanceId,
        clock,
        log: log.child({ component: 'leases' }),
        confirmedChainTime: confirmedTime,
      });
      const running = engine;
      cleanups.push(() => running.stop());
      follower = chain.follow('marketplace', engine.onChainEvents);
      const following = follower;
      step('recovering leases from the store and Docker');
      await engine.start();
      chain.start();

      // ---- registration, then the API
      const apiUrl = config.api.publicUrl ?? localApiUrl(config);
      step('registering on-chain (waits for the transaction when something changed)');
      await ensureRegistered({ chain, outbox: store.outbox, signer, apiUrl, metadata: metadataOf(config, report), log, signal: options.signal });
      step('serving the API');
      const service = new EngineProviderService({
        config,
        store,
        ledger,
        admission,
        engine,
        backend,
        settler,
        chain,
        domain,
        provider,
        devnet: devnet !== undefined,
        version: options.version,
        startedAt: Math.floor(clock.now() / 1000),
        clock,
        cursorBlock: () => following.cursor(),
      });
      const api = await startApi({ config, service, store, ledger, chain, provider, clock, log });
      cleanups.push(() => api.close());
      const address = api.address as AddressInfo;
      const listening = localUrl(address.address, address.port);
      const info: DaemonInfo = {
        apiUrl: config.api.publicUrl ?? listening,
        provider,
        chainId: settings.chainId,
        marketplace: settings.marketplaceAddress,
        token: settings.tokenAddress,
        rpcUrl: settings.rpcUrl,
        devnet: devnet !== undefined,
        instanceId,
        devTenantKey,
      };
      log.info({ apiUrl: info.apiUrl, provider, chainId: info.chainId, marketplace: info.marketplace }, 'provider daemon ready');
      // A drained lease is billed once its final checkpoint is paid or claimed: within the
      // tenant's countersign grace plus a few blocks.
      const settlementBound = (): number => (grace + 60) * 1000;
      return new Daemon(info, service, { devnet, store, chain, engine, api, live, report, signer, apiUrl, settlementBound, clock, log });
    } catch (err) {
      await cleanup();
      throw err;
    }
  }

  /**
   * SIGHUP: pricing and admission policy from `next` apply to quotes from now on; running leases
   * keep the rates fixed on-chain when they opened. Every change is logged; changes to other keys
   * are named and left for the next start. When the advertised prices change, the provider's
   * on-chain metadata is updated in the background.
   */
  reload(next: ProviderConfig): ReloadOutcome {
    const { live, report, log } = this.parts;
    const before = metadataOf(live.view, report);
    const outcome = live.apply(next);
    for (const change of outcome.applied) log.info({ key: change.key }, `config reloaded: ${describeChange(change)}`);
    for (const change of outcome.needRestart) log.warn({ key: change.key }, `config change not applied (takes a restart): ${describeChange(change)}`);
    if (outcome.applied.length + outcome.needRestart.length === 0) log.info('config reloaded: nothing changed');
    const metadata = metadataOf(live.view, report);
    if (metadata !== before) this.updateRegistration(metadata);
    return outcome;
  }

  private registrationUpdate: Promise<void> = Promise.resolve();

  private updateRegistration(metadata: string): void {
    const { chain, signer, apiUrl, log } = this.parts;
    // One at a time, in order: the last reload's metadata is the one left on-chain.
    this.registrationUpdate = this.registrationUpdate
      .then(() => ensureRegistered({ chain, outbox: this.parts.store.outbox, signer, apiUrl, metadata, log }))
      .then(() => log.info('on-chain metadata updated with the new prices'))
      .catch((err: unknown) => log.warn({ err: describeError(err) }, 'updating the on-chain metadata failed; the next start tries again'));
  }

  /**
   * SIGTERM with a drain timeout: no new quotes; running leases get `timeoutSeconds` to finish by
   * themselves, then are ended (operator-drain); then waits, bounded, until every one of them is
   * billed (final checkpoint redeemed or claimed on-chain). The API stays up meanwhile, so tenants
   * can still read logs and countersign. What is left when a bound passes goes on at the next start.
   */
  async drain({ timeoutSeconds, signal, onProgress }: DrainOptions): Promise<DrainResult> {
    const { engine, store, clock, log } = this.parts;
    engine.stopAccepting();
    const say = (message: string, fields: Record<string, unknown> = {}): void => {
      log.info(fields, message);
      onProgress?.(message);
    };
    const active = (): string[] => store.leases.list({ states: [...DRAINABLE] }).map((l) => l.leaseId);
    const pause = async (): Promise<boolean> => {
      try {
        await sleep(DRAIN_POLL_MS, signal);
        return true;
      } catch {
        return false;
      }
    };
    const started = active();
    const tracked = new Set([...started, ...store.leases.list({ states: LIVE_STATES }).map((l) => l.leaseId)]);
    say(`draining: no new quotes; ${started.length} lease(s) running get ${timeoutSeconds} s to finish before they are ended and billed`, {
      leases: started.length,
      timeoutSeconds,
    });
    const deadline = clock.now() + timeoutSeconds * 1000;
    let running = started;
    while (running.length > 0 && clock.now() < deadline && !signal?.aborted) {
      if (!(await pause())) break;
      running = active();
      for (const id of running) tracked.add(id);
    }
    const ended = signal?.aborted ? [] : active();
    if (ended.length > 0) {
      say(`drain timeout: ending ${ended.length} lease(s) (operator-drain) and billing them`, { leases: ended });
      await engine.drain();
    }
    const billDeadline = clock.now() + this.parts.settlementBound();
    let unbilled = [...tracked].filter((id) => !this.billed(id));
    if (unbilled.length > 0 && !signal?.aborted) say(`waiting for ${unbilled.length} lease(s) to be billed on-chain`, { leases: unbilled });
    while (unbilled.length > 0 && clock.now() < billDeadline && !signal?.aborted) {
      if (!(await pause())) break;
      unbilled = unbilled.filter((id) => !this.billed(id));
    }
    const notFinished = new Set([...ended, ...active()]);
    const billed = new Set([...tracked].filter((id) => this.billed(id)));
    const result: DrainResult = {
      finished: [...tracked].filter((id) => !notFinished.has(id)),
      ended,
      billed: [...billed],
      left: [...tracked].filter((id) => !billed.has(id)),
    };
    if (result.left.length > 0) {
      log.warn({ leases: result.left }, 'drain: some leases are not billed yet; the next start goes on with them');
    }
    say(`drained: ${result.finished.length} finished, ${result.ended.length} ended, ${result.billed.length} billed, ${result.left.length} left for the next start`, {
      ...result,
    });
    return result;
  }

  /** True once an ended lease's final payment is on-chain, or it had nothing to bill. */
  private billed(leaseId: string): boolean {
    const { store } = this.parts;
    const lease = store.leases.get(leaseId);
    if (!lease || TERMINAL_STATES.has(lease.state) || lease.endReason === 'refused') return true;
    const final = store.checkpoints.forLease(leaseId).at(-1);
    if (!final) return lease.state === 'settling' && store.usage.forLease(leaseId).length === 0;
    if (!final.final) return false;
    if (final.status === 'final' || final.cumulativeAmount === 0n) return true;
    // The settler closes the lease on-chain only once the final payment is done or not needed
    // (an earlier redeemed checkpoint already paid as much).
    return [redeemKey(leaseId, final.seq), claimKey(leaseId, final.seq), closeKey(leaseId)].some((key) => {
      const entry = store.outbox.byKey(key);
      return entry !== undefined && outcomeOf(entry)?.state === 'confirmed';
    });
  }

  /** Graceful: stop taking quotes, close the API, stop the loops, flush the store, stop the devnet. */
  async stop(): Promise<void> {
    const { engine, api, chain, store, devnet, log } = this.parts;
    log.info('shutting down: no new quotes; running leases keep running and are adopted at the next start');
    engine.stopAccepting();
    await api.close().catch(() => undefined);
    await engine.stop();
    await chain.stop().catch(() => undefined);
    store.checkpointWal();
    store.close();
    await devnet?.stop();
    log.info('stopped');
  }
}

/**
 * The timestamp of the follower's cursor block, cached per block. When the follower has handled
 * the chain's head (no confirmations, as on an automining devnet) nothing is unseen, and any
 * close still to come will be stamped later than now: then it is the local time.
 */
function confirmedChainTime(chain: ChainClient, cursor: () => number | undefined, clock: Clock): () => Promise<number | undefined> {
  let cached: { block: number; time: number } | undefined;
  let head: { at: number; block: number } | undefined;
  return async () => {
    const block = cursor();
    if (block === undefined) return undefined;
    if (chain.settings.confirmations === 0) {
      if (!head || clock.now() - head.at > 500) head = { at: clock.now(), block: await chain.rpc.getBlockNumber() };
      if (head.block <= block) return Math.floor(clock.now() / 1000);
    }
    if (cached?.block !== block) {
      const found = await chain.rpc.getBlock(block);
      if (!found) return cached?.time;
      cached = { block, time: found.timestamp };
    }
    return cached.time;
  };
}

function portsInUse(store: Store): number[] {
  const ports: number[] = [];
  for (const quote of store.quotes.open()) ports.push(...quote.allocation.hostPorts);
  for (const lease of store.leases.list({ states: LIVE_STATES })) {
    const quote = lease.quoteNonce ? store.quotes.get(lease.quoteNonce) : undefined;
    if (quote && quote.state !== 'open') ports.push(...quote.allocation.hostPorts);
  }
  return ports;
}

/** The on-chain metadata: what this provider sells and at what price (stable across restarts). */
export function metadataOf(config: ProviderConfig, report: CapacityReport): string {
  const gpus = new Map<string, number>();
  for (const gpu of report.allocatable.gpus) {
    const name = gpu.profile ? `${gpu.model} ${gpu.profile}` : gpu.model;
    gpus.set(name, (gpus.get(name) ?? 0) + 1);
  }
  return JSON.stringify({
    region: config.region,
    cpuMillis: report.allocatable.cpuMillis,
    memoryBytes: report.allocatable.memoryBytes,
    gpus: Object.fromEntries(gpus),
    pricing: {
      perLeaseSecond: config.pricing.perLeaseSecond,
      perCpuSecond: config.pricing.perCpuSecond,
      perGiBMemorySecond: config.pricing.perGiBMemorySecond,
      perGpuSecond: config.pricing.perGpuSecond,
      perGpuSecondByModel: config.pricing.perGpuSecondByModel,
      perGiBEgress: config.pricing.perGiBEgress,
      minimumPerLease: config.pricing.minimumPerLease,
    },
  });
}

/**
 * Registers the provider (approving and posting the minimum bond) when it is not registered, or
 * updates its API URL and metadata when they changed. Waits for the transactions, saying so.
 */
async function ensureRegistered(options: {
  chain: ChainClient;
  outbox: OutboxRepository;
  signer: Wallet;
  apiUrl: string;
  metadata: string;
  log: Logger;
  signal?: AbortSignal;
}): Promise<void> {
  const { chain, signer, apiUrl, metadata, log } = options;
  const market = chain.settings.marketplaceAddress;
  const info = (await chain.marketplace.read('getProvider', [signer.address])) as unknown as { status: bigint; apiUrl: string; metadata: string };
  const status = Number(info.status);
  const wait = async (key: string, what: string): Promise<void> => {
    log.info({ key }, `waiting for the chain: ${what}`);
    const outcome = await chain.sender.waitFor(key, { signal: options.signal, timeoutMs: REGISTRATION_TIMEOUT_MS });
    if (outcome.state !== 'confirmed') {
      throw new ProviderError(outcome.code, `${what} failed: ${outcome.error}`, {
        fix: 'check that the provider key holds enough of the payment token for the bond and gas for the transaction',
      });
    }
  };
  if (status === 0) {
    const bond = await chain.marketplace.read('minBond', []);
    const tokenAddress = await chain.marketplace.read('token', []);
    const token = tokenAt(tokenAddress, chain.rpc);
    const allowance = await token.read('allowance', [signer.address, market]);
    const tag = keccak256(toUtf8Bytes(`${market}:${signer.address}`)).slice(2, 14);
    if (allowance < bond) {
      chain.sender.submit({ key: `approve-bond:${tag}`, to: tokenAddress, data: token.encode('approve', [market, bond]) });
      await wait(`approve-bond:${tag}`, 'approving the bond');
    }
    const key = `register:${tag}`;
    const existing = chain.sender.submit({ key, to: market, data: chain.marketplace.encode('registerProvider', [apiUrl, metadata, bond]) });
    if (outcomeOf(existing)?.state === 'confirmed') return;
    await wait(key, `registering the provider with a bond of ${bond} base units`);
    log.info({ apiUrl }, 'provider registered on-chain');
    return;
  }
  if (status !== 1) {
    throw new ProviderError('TX_REJECTED', `this provider key is ${status === 2 ? 'unbonding' : 'slashed'} on the marketplace and cannot take leases`, {
      fix: 'use another provider key',
    });
  }
  if (info.apiUrl !== apiUrl || info.metadata !== metadata) {
    // An update still in flight (sent before a crash, or by the last reload) lands first; then the
    // chain says whether another is needed. Updates are numbered, never named by content: the
    // same prices may be set again later (A → B → A → B), and a failed one must not block a retry.
    const earlier = options.outbox.openWithPrefix('update:');
    if (earlier) {
      await wait(earlier.key, 'an earlier update of the API URL and metadata').catch((err: unknown) => log.warn({ err: describeError(err) }, 'an earlier update failed'));
      const now = (await chain.marketplace.read('getProvider', [signer.address])) as unknown as { apiUrl: string; metadata: string };
      if (now.apiUrl === apiUrl && now.metadata === metadata) return;
    }
    const key = `update:${options.outbox.countWithPrefix('update:') + 1}`;
    chain.sender.submit({ key, to: market, data: chain.marketplace.encode('updateProvider', [apiUrl, metadata]) });
    await wait(key, 'updating the provider\'s API URL and metadata');
  }
}

