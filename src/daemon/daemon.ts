import { randomBytes } from 'node:crypto';
import { Wallet } from 'ethers';
import type { AddressInfo } from 'node:net';
import { AllocationLedger, createCapacityDetector, createGpuSampler, type CapacityReport, type DockerSource } from '../capacity';
import {
  ChainClient,
  keystoreSettings,
  loadKeystore,
  marketplaceDomain,
  type ChainSettings,
  type EventFollower,
  type Env,
} from '../chain';
import { ReloadableConfig, describeChange, type ProviderConfig, type ReloadOutcome } from '../config';
import { Devnet, devnetChainSettings } from '../devnet';
import { describeError } from '../errors';
import type { Logger } from '../log';
import { Admission, LeaseEngine, QUOTE_HOLD_GRACE_SECONDS } from '../leases';
import { LIVE_STATES } from '../vocabulary';
import { ContainerCounterReader, hostKernelFiles } from '../metering';
import { DockerBackend, Firewall, FirewallWatch, ImageResolver, ImageService, InstanceRegistry, LeaseRuntime, OrphanCollector, LogArchive, createDockerClient, logArchiveDirFor } from '../runtime';
import { Settler } from '../settlement';
import type { LeaseBackend } from '../runtime';
import { openStore, storePathFor, type Store } from '../store';
import type { Clock } from '../util/clock';
import type { Exec } from '../util/exec';
import { loadBenchmarks, type SignedBenchmarks } from '../benchmark';
import { runGpuBench } from './gpu-bench';
import { EngineProviderService } from './provider-service';
import { startApi, tenantFunding, type RunningApi } from './api';
import { confirmedChainTime } from './chain-time';
import { drainLeases, type DrainOptions, type DrainResult } from './drain';
import { ensureRegistered, metadataOf, payoutAddressOf } from './registration';
import { localUrl } from '../api';
import { ensureCertificate } from '../tls';
import { startCertificateRenewal } from './certificate-renewal';
import { NatLibraryDiscovery, Reachability, SshRelayTunnel, type ReachabilityStatus } from '../reachability';
import { networkInterfaces } from 'node:os';
import { startGpuHealth } from './gpu-health';
import { testGpuPassthrough, type PassthroughVerdict } from '../doctor';
import type { GpuModelOffer } from '../api';

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
  /**
   * Replacements for the parts that need hardware this host may not have: in-process tests sell
   * fake GPUs through an engine with an NVIDIA runtime (`docker`) and run leases in memory.
   */
  seams?: { docker?: DockerSource; backend?: LeaseBackend; passthrough?: (uuid: string, signal: AbortSignal) => Promise<PassthroughVerdict> };
}

export interface DaemonInfo {
  /** The URL registered on-chain: the one the reachability path found to work. */
  apiUrl: string;
  /** How tenants reach it (path, verified, detail, fix). */
  reachability: ReachabilityStatus;
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
  /** SHA-256 of the API certificate at start (the pin in the on-chain metadata); null without TLS. */
  tlsSha256: string | null;
}

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
      /** The pin registered on-chain now; a renewal changes it. */
      pin: { sha256: string | undefined };
      settlementBound: () => number;
      clock: Clock;
      log: Logger;
      stopUpkeep: () => Promise<void>;
      reachability: Reachability;
      gpuModels: () => GpuModelOffer[];
      /** The signed GPU benchmark the registration carries (read at start). */
      publishedBenchmarks: SignedBenchmarks | null;
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
      const report = await createCapacityDetector(config, { exec, env, clock, docker: options.seams?.docker }).detect(options.signal);
      for (const missing of report.notDetected) log.warn({ part: missing.part, code: missing.code }, missing.reason);
      const ledger = new AllocationLedger(report.allocatable, clock, { quoteGraceMs: QUOTE_HOLD_GRACE_SECONDS * 1000 });
      const docker = createDockerClient(config);
      // Networks, containers and chains carry the instance id: daemons sharing the engine keep apart.
      const firewall = new Firewall(exec, log.child({ component: 'firewall' }), { instanceId });
      const registry = new InstanceRegistry({ dir: config.runtime.network.instanceRegistryDir, clock, log: log.child({ component: 'instances' }) });
      await registry.register(instanceId, config.dataDir).catch((err: unknown) =>
        log.warn({ dir: config.runtime.network.instanceRegistryDir, err: describeError(err) }, 'could not record this instance in the registry: other daemons on this host will never collect what it leaves'),
      );
      const images = new ImageService(docker, config, log.child({ component: 'images' }), clock);
      const runtime = new LeaseRuntime({ docker, firewall, images, config, log: log.child({ component: 'runtime' }), clock, exec });
      const backend = options.seams?.backend ?? new DockerBackend({ docker, runtime, images, counters: new ContainerCounterReader(hostKernelFiles()), config, clock, log: log.child({ component: 'backend' }) });

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
          claimAfterWindowFraction: config.settlement.claimAfterWindowFraction,
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
        funding: await tenantFunding(chain, config, clock),
        images: new ImageResolver(docker, images, config),
        gpus: {
          units: () => report.allocatable.gpus,
          facts: () => ({ driverVersion: report.gpus.ok ? report.gpus.driverVersion : null, cudaVersion: report.gpus.ok ? report.gpus.cudaVersion : null }),
        },
      });
      let follower: EventFollower | undefined;
      const confirmedTime = confirmedChainTime(chain, () => follower?.cursor(), clock);
      const logArchive = new LogArchive({
        dir: logArchiveDirFor(config.dataDir, settings.chainId, settings.marketplaceAddress),
        settings: () => config.logArchive,
        clock,
        log: log.child({ component: 'log-archive' }),
      });
      engine = new LeaseEngine({
        logArchive,
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
        // Only a machine that sells GPUs reads their utilisation.
        gpus: report.allocatable.gpus.length > 0 ? createGpuSampler(config, { exec, env, clock }) : undefined,
      });
      const running = engine;
      cleanups.push(() => running.stop());
      follower = chain.follow('marketplace', engine.onChainEvents);
      const following = follower;
      step('recovering leases from the store and Docker');
      await engine.start();
      chain.start();
      step('reading GPU health');
      const passthrough =
        options.seams?.passthrough ??
        ((uuid: string, signal: AbortSignal) => testGpuPassthrough(docker, { image: config.gpu.passthroughCheckImage, uuid, gpu: config.gpu, timeoutMs: config.docker.requestTimeoutMs * 3, signal }));
      const gpuHealth = await startGpuHealth({ config, report, ledger, engine: running, exec, env, clock, log, passthrough, backend });
      cleanups.push(() => gpuHealth.stop());

      if (config.gpu.benchmark.atStart && report.allocatable.gpus.length > 0) {
        // Before the API serves quotes, so only recovered leases hold GPUs: those are skipped.
        step('benchmarking the idle GPUs (gpu.benchmark.atStart)');
        const bench = await runGpuBench({ config, report, signer, held: ledger.list().flatMap((a) => a.gpuUuids), docker, clock, log: log.child({ component: 'gpu-bench' }), signal: options.signal });
        for (const skip of bench.skipped) log.info({ uuid: skip.uuid }, `GPU benchmark skipped: ${skip.reason}`);
        for (const failure of bench.failed) log.warn({ uuid: failure.uuid, code: failure.code, fix: failure.fix }, failure.message);
      }
      const benchmarks = (): Promise<SignedBenchmarks | null> => loadBenchmarks(config.dataDir, provider);

      // The on-chain metadata carries the summary signed when this start began; the offer reads it live.
      const publishedBenchmarks = await benchmarks();

      // ---- the certificate, the API, how tenants reach it, then the registration (with the pin) that tells them
      const certificate = config.api.tls.enabled ? await ensureCertificate({ config, now: clock.now(), log }) : undefined;
      const pin = { sha256: certificate?.info.sha256 };
      step('serving the API');
      let reachability: Reachability | undefined;
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
        reachability: () => reachability?.status ?? null,
        tlsSha256: () => pin.sha256 ?? null,
        logArchive,
        gpus: gpuHealth,
        benchmarks,
      });
      const api = await startApi({
        config,
        service,
        store,
        ledger,
        report,
        backend,
        chain,
        provider,
        clock,
        log,
        version: options.version,
        dockerRoot: () => images.dataRoot(),
        claimDeadline: (leaseId) => settler.claimDeadline(leaseId),
        gpuHealth: () => gpuHealth.health(),
        ...(certificate ? { tls: { cert: certificate.certPem, key: certificate.keyPem } } : {}),
      });
      cleanups.push(() => api.close());
      // The path is proven against the listening API before its URL goes on-chain.
      step('finding how tenants reach this machine (public address, router port mapping, IPv6, relay)');
      const reachLog = log.child({ component: 'reachability' });
      const address = api.address as AddressInfo;
      reachability = await Reachability.resolve({
        config,
        apiPort: address.port,
        scheme: certificate ? 'https' : 'http',
        listenUrl: localUrl(address.address, address.port, certificate ? 'https' : 'http'),
        interfaces: networkInterfaces,
        discovery: new NatLibraryDiscovery(),
        relay: (relay) => new SshRelayTunnel(relay, { accept: api.accept, clock, log: reachLog }),
        clock,
        log: reachLog,
        signal: options.signal,
      });
      const reached = reachability;
      cleanups.push(() => reached.stop());
      const apiUrl = reached.status.url;
      log.info({ path: reached.status.path, url: apiUrl, verified: reached.status.verified }, `reachable: ${reached.status.detail}`);
      step('registering on-chain (waits for the transaction when something changed)');
      await ensureRegistered({
        chain,
        outbox: store.outbox,
        signer,
        apiUrl,
        metadata: metadataOf(config, report, { tlsSha256: pin.sha256, gpuModels: gpuHealth.catalogue(), benchmarks: publishedBenchmarks }),
        payout: payoutAddressOf(config, signer.address),
        log,
        signal: options.signal,
      });
      const stopRuntimeUpkeep = startUpkeep({ config, docker, firewall, registry, clock, log, onRestored: (count) => api.metrics.firewallRestored(count) });
      const stopUpkeep = async (): Promise<void> => {
        await gpuHealth.stop();
        await stopRuntimeUpkeep();
      };
      cleanups.push(stopRuntimeUpkeep);
      const info: DaemonInfo = {
        apiUrl,
        reachability: reached.status,
        provider,
        chainId: settings.chainId,
        marketplace: settings.marketplaceAddress,
        token: settings.tokenAddress,
        rpcUrl: settings.rpcUrl,
        devnet: devnet !== undefined,
        instanceId,
        devTenantKey,
        tlsSha256: pin.sha256 ?? null,
      };
      log.info({ apiUrl: info.apiUrl, provider, chainId: info.chainId, marketplace: info.marketplace }, 'provider daemon ready');
      // A drained lease is billed once its final checkpoint is paid or claimed: within the
      // tenant's countersign grace plus a few blocks.
      const settlementBound = (): number => (grace + 60) * 1000;
      const daemon = new Daemon(info, service, { devnet, store, chain, engine, api, live, report, signer, apiUrl, pin, settlementBound, clock, log, stopUpkeep, reachability: reached, gpuModels: () => gpuHealth.catalogue(), publishedBenchmarks });
      if (certificate) {
        const stopRenewal = startCertificateRenewal({ config, current: certificate, clock, log, onRenewed: (renewed) => daemon.certificateRenewed(renewed) });
        daemon.stopRenewal = stopRenewal;
      }
      return daemon;
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
    const { live, report, pin, log } = this.parts;
    const before = metadataOf(live.view, report, { tlsSha256: pin.sha256, gpuModels: this.parts.gpuModels(), benchmarks: this.parts.publishedBenchmarks });
    const outcome = live.apply(next);
    for (const change of outcome.applied) log.info({ key: change.key }, `config reloaded: ${describeChange(change)}`);
    for (const change of outcome.needRestart) log.warn({ key: change.key }, `config change not applied (takes a restart): ${describeChange(change)}`);
    if (outcome.applied.length + outcome.needRestart.length === 0) log.info('config reloaded: nothing changed');
    const metadata = metadataOf(live.view, report, { tlsSha256: pin.sha256, gpuModels: this.parts.gpuModels(), benchmarks: this.parts.publishedBenchmarks });
    if (metadata !== before) this.updateRegistration(metadata, 'on-chain metadata updated with the new prices');
    return outcome;
  }

  /** Stops the certificate renewal loop (set at start when the API speaks TLS). */
  stopRenewal: () => Promise<void> = async () => undefined;

  /** A renewed certificate: new connections get it at once, and its pin goes on-chain. */
  certificateRenewed(renewed: { certPem: string; keyPem: string; info: { sha256: string } }): void {
    const { api, live, report, pin } = this.parts;
    api.setCertificate({ cert: renewed.certPem, key: renewed.keyPem });
    pin.sha256 = renewed.info.sha256;
    this.updateRegistration(metadataOf(live.view, report, { tlsSha256: pin.sha256, gpuModels: this.parts.gpuModels(), benchmarks: this.parts.publishedBenchmarks }), 'on-chain TLS pin updated to the renewed certificate');
  }

  private registrationUpdate: Promise<void> = Promise.resolve();

  private updateRegistration(metadata: string, done: string): void {
    const { chain, signer, apiUrl, log } = this.parts;
    // One at a time, in order: the last reload's metadata is the one left on-chain.
    this.registrationUpdate = this.registrationUpdate
      .then(() => ensureRegistered({ chain, outbox: this.parts.store.outbox, signer, apiUrl, metadata, payout: payoutAddressOf(this.parts.live.view, signer.address), log }))
      .then(() => log.info(done))
      .catch((err: unknown) => log.warn({ err: describeError(err) }, 'updating the on-chain metadata failed; the next start tries again'));
  }

  /** SIGTERM with a drain timeout: running leases get their time, then are ended and billed (see drainLeases). */
  drain(options: DrainOptions): Promise<DrainResult> {
    const { engine, store, settlementBound, clock, log } = this.parts;
    return drainLeases({ engine, store, settlementBound, clock, log }, options);
  }

  /** Graceful: stop taking quotes, close the API, stop the loops, flush the store, stop the devnet. */
  async stop(): Promise<void> {
    const { engine, api, chain, store, devnet, log } = this.parts;
    log.info('shutting down: no new quotes; running leases keep running and are adopted at the next start');
    engine.stopAccepting();
    await this.stopRenewal();
    await this.parts.stopUpkeep();
    // The router mapping and the relay tunnel go first: nothing should lead to a closed port.
    await this.parts.reachability.stop().catch(() => undefined);
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
 * The runtime's loops beside the engine: the lease firewall check (runtime.firewall) and, with this
 * instance's heartbeat, the collection of what gone daemon instances left (runtime.network).
 * Returns their stop.
 */
function startUpkeep(options: {
  config: ProviderConfig;
  docker: ReturnType<typeof createDockerClient>;
  firewall: Firewall;
  registry: InstanceRegistry;
  clock: Clock;
  log: Logger;
  onRestored: (count: number) => void;
}): () => Promise<void> {
  const { config, docker, firewall, registry, clock, log } = options;
  const controller = new AbortController();
  const watch = new FirewallWatch({ firewall, clock, log: log.child({ component: 'firewall' }), intervalMs: config.runtime.firewall.checkIntervalSeconds * 1000, onRestored: options.onRestored });
  const graceMs = config.runtime.network.orphanGraceSeconds * 1000;
  const orphans = new OrphanCollector({ docker, firewall, registry, clock, log: log.child({ component: 'instances' }), graceMs, requestTimeoutMs: config.docker.requestTimeoutMs });
  // The heartbeat is what others judge this instance by: several per grace period.
  const loops = Promise.all([watch.run(controller.signal), orphans.run({ signal: controller.signal, intervalMs: Math.min(60_000, graceMs / 4) })]);
  return async () => {
    controller.abort();
    await loops;
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
