/**
 * Density: how many long-running tiny leases one host holds at once through the real engine (an
 * in-process daemon on an automining devnet, the tenant client over HTTP, the real Docker engine),
 * and what each one costs the daemon. Every lease is `sleep` in busybox at the smallest allocation
 * a manifest may ask for (10 m CPU, 16 MiB).
 *
 * Levels 1, 100 and N: the leases up to one less than the level are opened a few at a time (the
 * ramp), then one probe lease is opened alone; its start latency (openLease mined to `running` in
 * the store) is the figure at that level, the one at level 1 the baseline. At each level the
 * daemon is then left alone for a window: its RSS, its CPU (this process: the daemon and an idle
 * tenant), the event loop's delay, the host's busy CPU and available memory. Per lease: the change
 * from level 1 to level N, divided by the leases between.
 *
 * Admission never promises more CPU than the host has: at 10 m a lease, a 2-core host admits 200.
 * With --pretend-cores (default: enough for N) the bench tells the capacity probe the host has
 * that many cores, so the engine's own limits are what is measured; sleeping leases use no CPU.
 *
 * Cleanup, also on SIGINT/SIGTERM: the daemon stops (and its devnet), then every lease's container,
 * network and firewall chains are removed through the runtime, and what is left is counted.
 * Figures are printed after it, the JSON line last.
 *
 *   npm run bench -- density [--leases 500] [--ramp 8] [--window-seconds 20] [--minutes 15] [--pretend-cores 0]
 *   (DENSITY_LEASES sets --leases too)
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { JsonRpcProvider, NonceManager, Wallet } from 'ethers';
import si from 'systeminformation';
import { tokenAt } from '../src/chain';
import { configSchema, type ProviderConfig } from '../src/config';
import { Daemon } from '../src/daemon';
import { devPrivateKey, freePort } from '../src/devnet';
import { createLogger, silentLogger } from '../src/log';
import { Firewall, ImageService, LeaseRuntime } from '../src/runtime';
import { openStoreReadOnly, storePathFor, type Store } from '../src/store';
import { TenantClient } from '../src/tenant';
import { systemClock } from '../src/util/clock';
import { execFileAsync } from '../src/util/exec';

const sh = promisify(execFile);
const BASE_IMAGE = 'provider-test/busybox:latest';
/**
 * The bench's own image (the test image plus a label): an image the engine got from a registry
 * (any RepoDigest, e.g. a test pushed it to a local registry) is pulled again for every lease, and
 * this host has no registry. A fresh image id is never pushed anywhere.
 */
const IMAGE = 'provider-bench/density-busybox:latest';
const MANIFEST = { image: IMAGE, command: ['sleep', '86400'], resources: { cpuMillis: 10, memoryBytes: 16 * 2 ** 20, diskBytes: 16 * 2 ** 20 }, maxDurationSeconds: 3600 };
const DEPOSIT = 10n ** 15n;
/** A lease that is not running this long after its open is counted failed (START_TIMEOUT). */
const START_TIMEOUT_MS = 180_000;
/** The ramp gives up after this many failures in a row: the host is out of something. */
const FAILURES_IN_A_ROW = 10;

function option(args: string[], name: string, fallback: string): number {
  const i = args.indexOf(`--${name}`);
  const value = Number(i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number >= 0`);
  return value;
}

interface Failure {
  leaseId?: string;
  code: string;
  detail: string;
}

interface LevelFigures {
  running: number;
  startLatencyMs: number;
  rssMiB: number;
  cpuPercent: number;
  loopDelayP99Ms: number;
  hostBusyPercent: number;
  hostAvailableMiB: number;
}

/** Host CPU time from /proc/stat: busy and total jiffies. */
function hostCpu(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

function hostAvailableMiB(): number {
  const line = readFileSync('/proc/meminfo', 'utf8').split('\n').find((l) => l.startsWith('MemAvailable:'));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

const codeOf = (err: unknown): string => {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'ERROR';
};

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

export async function run(args: string[]): Promise<void> {
  const positional = args.find((a, i) => /^\d+$/.test(a) && !args[i - 1]?.startsWith('--'));
  const target = Math.floor(option(args, 'leases', positional ?? process.env.DENSITY_LEASES ?? '500'));
  const ramp = Math.max(1, Math.floor(option(args, 'ramp', '8')));
  const windowMs = option(args, 'window-seconds', '20') * 1000;
  const deadline = Date.now() + option(args, 'minutes', '15') * 60_000;
  const pretendCores = Math.floor(option(args, 'pretend-cores', String(Math.ceil((target * MANIFEST.resources.cpuMillis) / 1000) + 1)));
  if (target < 1) throw new Error('--leases must be at least 1');
  await buildImage();

  const stop = new AbortController();
  const onSignal = (): void => stop.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // The whole run, cleanup aside, is bounded.
  const overall = setTimeout(() => stop.abort(new Error('out of time')), deadline - Date.now());

  const realCpu = si.cpu.bind(si);
  if (pretendCores > 0) {
    (si as { cpu: typeof si.cpu }).cpu = (async () => {
      const cpu = await realCpu();
      return { ...cpu, cores: Math.max(cpu.cores, pretendCores), processors: cpu.processors };
    }) as typeof si.cpu;
  }

  const dataDir = mkdtempSync(join(tmpdir(), 'provider-bench-density-'));
  const config = configSchema.parse({
    dataDir,
    log: { level: 'warn' },
    devnet: { port: await freePort(), blockTimeSeconds: 0 },
    api: { host: '127.0.0.1', port: await freePort() },
    reserve: { cpuMillis: 0, memoryBytes: 0, diskBytes: 0 },
    // The host's registry of daemon instances is for daemons that stay: this one goes with its data dir.
    runtime: { network: { instanceRegistryDir: join(dataDir, 'instances') } },
  });
  const log = createLogger({ level: 'warn', format: 'json' });
  const started = Date.now();
  const failures: Failure[] = [];
  const levels: LevelFigures[] = [];
  const rampLatencies: number[] = [];
  let reached = 0;
  let stoppedBecause: string | undefined;
  let daemon: Daemon | undefined;
  let store: Store | undefined;
  let rpc: JsonRpcProvider | undefined;
  let cleanupMs = 0;
  let leftOver = { containers: 0, networks: 0, chains: 0 };
  let runtimeIds: string[] = [];
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  try {
    daemon = await Daemon.start({ config, log, env: {}, exec: execFileAsync, clock: systemClock, version: 'bench', signal: stop.signal });
    const info = daemon.info;
    rpc = new JsonRpcProvider(info.rpcUrl, info.chainId, { staticNetwork: true, pollingInterval: 100 });
    store = openStoreReadOnly(storePathFor(dataDir, info.chainId, info.marketplace));
    const leases = store.leases;
    const signer = new NonceManager(new Wallet(devPrivateKey(2), rpc));
    const client = new TenantClient({ signer, apiUrl: info.apiUrl, chainId: info.chainId, chain: rpc, marketplace: info.marketplace });
    const token = tokenAt(info.token!, rpc);
    await (await signer.sendTransaction({ to: token.address, data: token.encode('approve', [info.marketplace, 10n ** 30n]) })).wait();

    const running = (): number => leases.list({ states: ['running'] }).length;

    /** Opens one lease and waits (bounded) until it runs; its latency from the mined open, or a failure. */
    const startOne = async (pollMs: number): Promise<number | undefined> => {
      let leaseId: string | undefined;
      try {
        const quote = await client.quote(MANIFEST, AbortSignal.any([stop.signal, AbortSignal.timeout(60_000)]));
        leaseId = String((await client.open(quote, DEPOSIT)).leaseId);
      } catch (err) {
        if (!stop.signal.aborted) failures.push({ code: codeOf(err), detail: err instanceof Error ? err.message.slice(0, 200) : String(err) });
        return undefined;
      }
      const opened = Date.now();
      while (!stop.signal.aborted && Date.now() - opened < START_TIMEOUT_MS) {
        const lease = leases.get(leaseId);
        if (lease?.state === 'running') return Date.now() - opened;
        if (lease && !['quoted', 'pulling', 'starting'].includes(lease.state)) {
          // The transition that ended it says why (later ones say how it was wound up).
          const why = leases.transitions(leaseId).find((t) => ['refused', 'pull-failed', 'start-failed', 'container-exited', 'container-vanished', 'end-requested'].includes(t.event));
          failures.push({ leaseId, code: why?.event ?? lease.endReason ?? lease.state, detail: (why?.reason ?? lease.detail ?? '').slice(0, 300) });
          return undefined;
        }
        await sleep(pollMs, stop.signal);
      }
      if (!stop.signal.aborted) failures.push({ leaseId, code: 'START_TIMEOUT', detail: `not running ${START_TIMEOUT_MS / 1000} s after its open` });
      return undefined;
    };

    let inARow = 0;
    const account = (latency: number | undefined): void => {
      inARow = latency === undefined ? inARow + 1 : 0;
      if (inARow >= FAILURES_IN_A_ROW && !stoppedBecause) stoppedBecause = `${FAILURES_IN_A_ROW} lease starts failed in a row`;
    };
    let opened = 0;
    /** Opens leases, `ramp` at a time, until `count` were opened (not all need to start). */
    const rampTo = async (count: number): Promise<void> => {
      const worker = async (): Promise<void> => {
        while (opened < count && !stop.signal.aborted && !stoppedBecause) {
          opened += 1;
          const latency = await startOne(250);
          account(latency);
          if (latency !== undefined) rampLatencies.push(latency);
        }
      };
      await Promise.all(Array.from({ length: ramp }, worker));
    };

    /** The daemon left alone for the window: what it costs with what runs now. */
    const measure = async (startLatencyMs: number): Promise<void> => {
      const cpu0 = process.cpuUsage();
      const host0 = hostCpu();
      const t0 = Date.now();
      loop.reset();
      await sleep(windowMs, stop.signal);
      const wall = Date.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const host1 = hostCpu();
      levels.push({
        running: running(),
        startLatencyMs,
        rssMiB: process.memoryUsage().rss / 2 ** 20,
        cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100,
        loopDelayP99Ms: loop.percentile(99) / 1e6,
        hostBusyPercent: ((host1.busy - host0.busy) / Math.max(1, host1.total - host0.total)) * 100,
        hostAvailableMiB: hostAvailableMiB(),
      });
    };

    for (const level of [...new Set([1, Math.min(100, target), target])]) {
      await rampTo(level - 1);
      if (stop.signal.aborted || stoppedBecause) break;
      opened += 1;
      const latency = await startOne(20);
      account(latency);
      if (latency === undefined) continue;
      reached = Math.max(reached, running());
      await measure(latency);
      process.stderr.write(`level ${level}: ${running()} running, start ${latency} ms, ${failures.length} failed so far (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    }
    reached = Math.max(reached, running());
    if (stop.signal.aborted) stoppedBecause = String((stop.signal.reason as Error | undefined)?.message ?? 'aborted');
  } finally {
    clearTimeout(overall);
    loop.disable();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    (si as { cpu: typeof si.cpu }).cpu = realCpu as typeof si.cpu;
    const cleanupStarted = Date.now();
    rpc?.destroy();
    runtimeIds = store?.leases.list().map((l) => l.runtimeId) ?? [];
    store?.close();
    const instance = daemon?.info.instanceId;
    await daemon?.stop().catch((err: unknown) => process.stderr.write(`daemon stop failed: ${String(err)}\n`));
    if (instance) leftOver = await removeInstance(config, instance, runtimeIds);
    await sh('docker', ['image', 'rm', IMAGE], { timeout: 60_000 }).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
    cleanupMs = Date.now() - cleanupStarted;
  }

  report({ target, reached, failures, levels, rampLatencies, stoppedBecause, totalMs: Date.now() - started, cleanupMs, leftOver, pretendCores });
}

/** Builds IMAGE from BASE_IMAGE (no context, nothing pulled). */
async function buildImage(): Promise<void> {
  await sh('docker', ['image', 'inspect', BASE_IMAGE], { timeout: 30_000 }).catch(() => {
    throw new Error(`${BASE_IMAGE} is not in the local Docker engine: the tests build it (or docker tag a busybox image as it)`);
  });
  await new Promise<void>((resolve, reject) => {
    const child = execFile('docker', ['build', '--pull=false', '-q', '-t', IMAGE, '-'], { timeout: 120_000 }, (err) => (err ? reject(err) : resolve()));
    child.stdin?.end(`FROM ${BASE_IMAGE}\nLABEL provider.bench=density\n`);
  });
}

/**
 * Removes what the daemon left running (it leaves workloads for the next start to adopt): each
 * lease's container, network and firewall chains, the runtime's own way, a few at a time; then
 * counts what is still there.
 */
async function removeInstance(config: ProviderConfig, instance: string, runtimeIds: readonly string[]): Promise<{ containers: number; networks: number; chains: number }> {
  const docker = new Docker({ socketPath: config.docker.socketPath });
  const log = silentLogger();
  const firewall = new Firewall(execFileAsync, log, { instanceId: instance });
  const runtime = new LeaseRuntime({ docker, firewall, images: new ImageService(docker, config, log, systemClock), config, log, clock: systemClock });
  const queue = [...runtimeIds];
  let failed = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        await runtime.remove(id, { signal: AbortSignal.timeout(60_000) }).catch(() => (failed += 1));
      }
    }),
  );
  if (failed > 0) process.stderr.write(`${failed} lease workloads could not be removed through the runtime\n`);
  const filter = `name=provider-lease-${instance}-`;
  const ids = async (argv: string[]): Promise<string[]> => {
    const { stdout } = await sh(argv[0]!, argv.slice(1), { timeout: 60_000 }).catch(() => ({ stdout: '' }));
    return stdout.split('\n').filter(Boolean);
  };
  const count = async (argv: string[]): Promise<number> => (await ids(argv)).length;
  // A lease opened while the daemon stopped has a network the store did not list yet.
  for (const id of await ids(['docker', 'ps', '-aq', '--filter', filter])) await sh('docker', ['rm', '-f', id], { timeout: 60_000 }).catch(() => undefined);
  for (const id of await ids(['docker', 'network', 'ls', '-q', '--filter', filter])) await sh('docker', ['network', 'rm', id], { timeout: 60_000 }).catch(() => undefined);
  return {
    containers: await count(['docker', 'ps', '-aq', '--filter', filter]),
    networks: await count(['docker', 'network', 'ls', '-q', '--filter', filter]),
    chains: (await sh('iptables', ['-S']).catch(() => ({ stdout: '' }))).stdout.split('\n').filter((l) => l.startsWith('-N') && l.includes(instance)).length,
  };
}

interface Outcome {
  target: number;
  reached: number;
  failures: Failure[];
  levels: LevelFigures[];
  rampLatencies: number[];
  stoppedBecause: string | undefined;
  totalMs: number;
  cleanupMs: number;
  leftOver: { containers: number; networks: number; chains: number };
  pretendCores: number;
}

function report(o: Outcome): void {
  const base = o.levels[0];
  const last = o.levels.at(-1);
  const byCode = new Map<string, number>();
  for (const f of o.failures) byCode.set(f.code, (byCode.get(f.code) ?? 0) + 1);
  const sorted = [...o.rampLatencies].sort((a, b) => a - b);
  const spread = base && last && last.running > base.running ? last.running - base.running : 0;
  const per = (a: number, b: number): number => (spread > 0 ? (b - a) / spread : NaN);
  const f1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : '-');
  const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : '-');

  console.log(`density: ${o.reached} leases running at once of ${o.target} asked, ${o.failures.length} failed${o.stoppedBecause ? ` (stopped: ${o.stoppedBecause})` : ''}`);
  console.log(`  busybox sleep, 10 m CPU, 16 MiB each${o.pretendCores > 0 ? `; admission told the host has ${o.pretendCores} cores` : ''}`);
  for (const [code, count] of byCode) console.log(`  failed ${code.padEnd(24)} ${count}  e.g. ${o.failures.find((f) => f.code === code)?.detail ?? ''}`);
  console.log('  running  start latency     daemon RSS  daemon CPU  loop p99   host busy  host available');
  for (const l of o.levels) {
    const ratio = base ? l.startLatencyMs / base.startLatencyMs : NaN;
    console.log(
      `  ${String(l.running).padStart(7)}  ${String(l.startLatencyMs).padStart(6)} ms (x${f2(ratio).padStart(5)})  ${f1(l.rssMiB).padStart(6)} MiB  ${f1(l.cpuPercent).padStart(7)} %  ${f1(l.loopDelayP99Ms).padStart(5)} ms  ${f1(l.hostBusyPercent).padStart(7)} %  ${l.hostAvailableMiB.toFixed(0).padStart(8)} MiB`,
    );
  }
  if (base && last && spread > 0) {
    console.log(`  per lease (level ${base.running} to ${last.running}): daemon RSS ${f2(per(base.rssMiB, last.rssMiB))} MiB, daemon CPU ${f2(per(base.cpuPercent, last.cpuPercent))} % of a core, host memory ${f2(per(last.hostAvailableMiB, base.hostAvailableMiB))} MiB`);
  }
  console.log(`  ramp start latency (${sorted.length} leases, ${'opened a few at a time'}): p50 ${pct(sorted, 50)} ms, p95 ${pct(sorted, 95)} ms, max ${sorted.at(-1) ?? '-'} ms`);
  console.log(`  total ${(o.totalMs / 1000).toFixed(0)} s, cleanup ${(o.cleanupMs / 1000).toFixed(0)} s, left over: ${o.leftOver.containers} containers, ${o.leftOver.networks} networks, ${o.leftOver.chains} firewall chains`);
  const at = (running: number): number | null => o.levels.find((l) => l.running >= running)?.startLatencyMs ?? null;
  console.log(
    JSON.stringify({
      leases_asked: o.target,
      leases_running: o.reached,
      failed: o.failures.length,
      failures_by_code: Object.fromEntries(byCode),
      stopped: o.stoppedBecause ?? null,
      start_latency_ms_at_1: at(1),
      start_latency_ms_at_100: o.target >= 100 ? at(100) : null,
      start_latency_ms_at_n: last?.startLatencyMs ?? null,
      start_latency_ratio_n_to_1: base && last ? Number((last.startLatencyMs / base.startLatencyMs).toFixed(2)) : null,
      ramp_start_latency_p50_ms: pct(sorted, 50) || null,
      ramp_start_latency_p95_ms: pct(sorted, 95) || null,
      daemon_rss_mib_at_n: last ? Number(last.rssMiB.toFixed(1)) : null,
      daemon_rss_mib_per_lease: spread > 0 ? Number(per(base!.rssMiB, last!.rssMiB).toFixed(3)) : null,
      daemon_cpu_percent_at_1: base ? Number(base.cpuPercent.toFixed(2)) : null,
      daemon_cpu_percent_at_n: last ? Number(last.cpuPercent.toFixed(2)) : null,
      daemon_cpu_percent_per_lease: spread > 0 ? Number(per(base!.cpuPercent, last!.cpuPercent).toFixed(4)) : null,
      loop_delay_p99_ms_at_n: last ? Number(last.loopDelayP99Ms.toFixed(1)) : null,
      host_busy_percent_at_n: last ? Number(last.hostBusyPercent.toFixed(1)) : null,
      host_memory_mib_per_lease: spread > 0 ? Number(per(last!.hostAvailableMiB, base!.hostAvailableMiB).toFixed(2)) : null,
      total_s: Math.round(o.totalMs / 1000),
      cleanup_s: Math.round(o.cleanupMs / 1000),
      left_over: o.leftOver,
    }),
  );
}
