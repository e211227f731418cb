/**
 * Metering: what it costs the daemon, and how right it is.
 *
 * 1. Daemon CPU per running lease at the default interval (metering.sampleIntervalSeconds): the
 *    engine's sampling path for one lease (inspect the container for its pid, read its cgroup and
 *    /proc/<pid>/net/dev counters, close the interval, clamp it to the lease's allocation, price it
 *    as the next record after the stored last one, store it with the timeline state in SQLite) is timed on N running containers for many rounds; CPU per sample divided by the
 *    interval is the daemon's CPU share per lease.
 * 2. Accuracy: a container limited to one core burns CPU in a busy loop for a known time, then
 *    idles, while it is metered every second; metered CPU-seconds against the burn, in percent.
 *    The busy loop is single-threaded under a 1-core quota, so it burns (almost exactly) its wall
 *    time; the kernel's own figure for the container (cpu.stat / cpuacct.usage) is shown too.
 *
 *   npm run bench -- metering [--leases 5] [--rounds 40] [--burn 8]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { clampToAllocation, nextRecord, type Allocation } from '../src/chain';
import { configSchema } from '../src/config';
import { silentLogger } from '../src/log';
import { ContainerCounterReader, UsageTimeline, hostKernelFiles } from '../src/metering';
import { Firewall, ImageService, LeaseRuntime, parseManifest } from '../src/runtime';
import { openStore } from '../src/store';
import { systemClock } from '../src/util/clock';
import { execFileAsync } from '../src/util/exec';

const sh = promisify(execFile);
const IMAGE = 'provider-test/busybox:latest';
const RATES = { perSecond: 1n, perCpuSecond: 1_000_000n, perGpuSecond: 0n, perGiBEgress: 1n };
/** What each idle lease's quote commits: its 100m of CPU, no GPU, the default egress. */
const ALLOCATION: Allocation = { cpuMillicores: 100n, gpuCount: 0n, egressBytesPerSecond: 125_000_000n };

function option(args: string[], name: string, fallback: string): number {
  const i = args.indexOf(`--${name}`);
  return Number(i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback);
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export async function run(args: string[]): Promise<void> {
  const leases = option(args, 'leases', '5');
  const rounds = option(args, 'rounds', '40');
  const burnSeconds = option(args, 'burn', '8');
  const config = configSchema.parse({ dataDir: '/tmp/provider-bench' });
  const log = silentLogger();
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const images = new ImageService(docker, config, log, systemClock);
  const runtime = new LeaseRuntime({ docker, firewall: new Firewall(execFileAsync, log), images, config, log, clock: systemClock });
  const reader = new ContainerCounterReader(hostKernelFiles());
  const dir = mkdtempSync(join(tmpdir(), 'provider-bench-metering-'));
  const store = openStore(join(dir, 'store.sqlite'));
  const imageId = (await docker.getImage(IMAGE).inspect()).Id;
  const prefix = `bm${Date.now().toString(36)}`;
  const ids: string[] = [];
  try {
    // ---- 1. CPU per sample, on `leases` running containers
    for (let i = 0; i < leases; i += 1) {
      const id = `${prefix}-idle-${i}`;
      ids.push(id);
      const manifest = parseManifest({ image: IMAGE, command: ['sleep', '600'], resources: { cpuMillis: 100, memoryBytes: 32 * 2 ** 20 }, maxDurationSeconds: 600 });
      await runtime.start({ manifest, imageId, allocation: { leaseId: id, cpuMillis: 100, memoryBytes: 32 * 2 ** 20, gpuUuids: [], hostPorts: [] } });
      store.leases.insert(
        {
          leaseId: String(i + 1), runtimeId: id, quoteNonce: null, tenant: '0x0000000000000000000000000000000000000001', manifestHash: '0x00', deposit: 0n,
          rates: RATES, allocation: ALLOCATION, maxDuration: 600, openedAt: 0, state: 'running', endReason: null, exitCode: null,
          detail: null, closedAt: null, containerId: null, startedAt: 0, endedAt: null, imageDigest: null, timeline: null,
          resultDigest: null, logsSha256: null, updatedAt: 0,
        },
        { fromState: 'running', toState: 'running', event: 'bench', reason: null, at: 0 },
      );
    }
    const timelines = ids.map(() => UsageTimeline.start(0, 0));
    let samples = 0;
    const wallStart = Date.now();
    const cpuStart = cpuMs();
    for (let round = 1; round <= rounds; round += 1) {
      for (const [i, id] of ids.entries()) {
        const info = await runtime.inspect(id);
        const counters = await reader.read(info.State.Pid);
        const interval = timelines[i]!.sample(round, counters);
        if (!interval) continue;
        // As the engine's meter appends a record (src/leases/meter.ts).
        const leaseId = String(i + 1);
        const usage = clampToAllocation(ALLOCATION, { t0: BigInt(interval.t0), t1: BigInt(interval.t1), cpuMillis: interval.cpuMillis, memoryByteSeconds: interval.memoryByteSeconds, gpuMillis: 0n, rxBytes: interval.rxBytes, txBytes: interval.txBytes });
        store.usage.append(leaseId, nextRecord(BigInt(leaseId), store.usage.last(leaseId), RATES, usage), timelines[i]!.state());
        samples += 1;
      }
    }
    const cpuPerSampleMs = (cpuMs() - cpuStart) / samples;
    const wallPerSampleMs = (Date.now() - wallStart) / samples;
    const interval = config.metering.sampleIntervalSeconds;
    const pctPerLease = (cpuPerSampleMs / (interval * 1000)) * 100;
    console.log(`sampling ${leases} running leases x ${rounds} rounds: ${samples} samples`);
    console.log(`  daemon CPU per sample      ${cpuPerSampleMs.toFixed(2)} ms (wall ${wallPerSampleMs.toFixed(2)} ms, Docker inspect included)`);
    console.log(`  at the default interval    ${interval} s: ${pctPerLease.toFixed(4)} % of one core per running lease`);
    for (const id of ids) await runtime.remove(id).catch(() => undefined);

    // ---- 2. accuracy against a known burn
    const burnId = `${prefix}-burn`;
    ids.push(burnId);
    const manifest = parseManifest({
      image: IMAGE,
      command: ['sh', '-c', `timeout ${burnSeconds} sh -c 'while :; do :; done'; sleep 4`],
      resources: { cpuMillis: 1000, memoryBytes: 32 * 2 ** 20 },
      maxDurationSeconds: 600,
    });
    await runtime.start({ manifest, imageId, allocation: { leaseId: burnId, cpuMillis: 1000, memoryBytes: 32 * 2 ** 20, gpuUuids: [], hostPorts: [] } });
    const timeline = UsageTimeline.start(Math.floor(Date.now() / 1000), 0);
    let metered = 0n;
    let kernelNanos = 0n;
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      let info;
      try {
        info = await runtime.inspect(burnId);
      } catch {
        break;
      }
      if (!info.State.Running) break;
      const counters = await reader.read(info.State.Pid).catch(() => undefined);
      if (!counters) break;
      kernelNanos = counters.cpuNanos;
      const slice = timeline.sample(Math.floor(Date.now() / 1000), counters);
      if (slice) metered += slice.cpuMillis;
    }
    const finished = timeline.finish(Math.floor(Date.now() / 1000));
    if (finished) metered += finished.cpuMillis;
    const meteredSeconds = Number(metered) / 1000;
    const errorPct = ((meteredSeconds - burnSeconds) / burnSeconds) * 100;
    console.log(`burn ${burnSeconds} s of one core (1000m quota), metered every 1 s`);
    console.log(`  metered                    ${meteredSeconds.toFixed(3)} CPU-s (kernel counter at the last sample ${(Number(kernelNanos) / 1e9).toFixed(3)} s)`);
    console.log(`  error                      ${errorPct.toFixed(2)} %`);
    console.log(JSON.stringify({ cpu_error_pct: Number(errorPct.toFixed(3)), daemon_cpu_pct_per_lease: Number(pctPerLease.toFixed(5)) }));
  } finally {
    for (const id of ids) await runtime.remove(id).catch(() => sh('docker', ['rm', '-f', `provider-lease-${id}`]).catch(() => undefined));
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
