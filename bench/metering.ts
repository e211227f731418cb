/**
 * Metering: what it costs the daemon, and how right it is.
 *
 * 1. Daemon CPU per running lease at the default interval (metering.sampleIntervalSeconds): the
 *    engine's sampling path for one lease (DockerBackend.counters: inspect the container, read its
 *    parent cgroup and its bridge's counters; close the interval, clamp it to the lease's
 *    allocation, price it as the next record after the stored last one, store it with the timeline
 *    state in SQLite) is timed on N running containers for many rounds; CPU per sample divided by
 *    the interval is the daemon's CPU share per lease.
 * 2. Accuracy: a container limited to one core burns CPU in a busy loop for a known time, then
 *    idles, while it is metered every second; metered CPU-seconds against the burn, in percent.
 *    The busy loop is single-threaded under a 1-core quota, so it burns (almost exactly) its wall
 *    time; the kernel's own figure for the container (cpu.stat / cpuacct.usage) is shown too.
 * 3. A short job: a fixed amount of busy-loop work that exits before the first sample (as a job
 *    shorter than the interval does), billed from the counters read after its exit
 *    (finalCounters), against the CPU time its own cgroup counted as its last act.
 *
 *   npm run bench -- metering [--leases 5] [--rounds 40] [--burn 8] [--short-work 550000]
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
import { DockerBackend, Firewall, ImageService, LeaseRuntime, parseManifest, type Manifest } from '../src/runtime';
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
  const shortWork = option(args, 'short-work', '550000');
  const config = configSchema.parse({ dataDir: '/tmp/provider-bench' });
  const log = silentLogger();
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const images = new ImageService(docker, config, log, systemClock);
  const runtime = new LeaseRuntime({ docker, firewall: new Firewall(execFileAsync, log), images, config, log, clock: systemClock });
  const reader = new ContainerCounterReader(hostKernelFiles());
  const backend = new DockerBackend({ docker, runtime, images, counters: reader, config, clock: systemClock, log });
  /** As the engine starts a lease: prepare (network), then start under its own parent cgroup. */
  const startLease = async (id: string, manifest: Manifest): Promise<void> => {
    const { imageId: prepared } = await backend.prepare({ runtimeId: id, manifest });
    await backend.start({ manifest, imageId: prepared, allocation: { leaseId: id, cpuMillis: manifest.resources.cpuMillis, memoryBytes: manifest.resources.memoryBytes, gpuUuids: [], hostPorts: [] } });
  };
  const dir = mkdtempSync(join(tmpdir(), 'provider-bench-metering-'));
  const store = openStore(join(dir, 'store.sqlite'));
  const prefix = `bm${Date.now().toString(36)}`;
  const ids: string[] = [];
  try {
    // ---- 1. CPU per sample, on `leases` running containers
    for (let i = 0; i < leases; i += 1) {
      const id = `${prefix}-idle-${i}`;
      ids.push(id);
      const manifest = parseManifest({ image: IMAGE, command: ['sleep', '600'], resources: { cpuMillis: 100, memoryBytes: 32 * 2 ** 20 }, maxDurationSeconds: 600 });
      await startLease(id, manifest);
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
        const counters = await backend.counters(id);
        if (!counters) throw new Error(`lease ${id} stopped running`);
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
    for (const id of ids) await backend.remove(id).catch(() => undefined);

    // ---- 2. accuracy against a known burn
    const burnId = `${prefix}-burn`;
    ids.push(burnId);
    const manifest = parseManifest({
      image: IMAGE,
      command: ['sh', '-c', `timeout ${burnSeconds} sh -c 'while :; do :; done'; sleep 4`],
      resources: { cpuMillis: 1000, memoryBytes: 32 * 2 ** 20 },
      maxDurationSeconds: 600,
    });
    await startLease(burnId, manifest);
    const timeline = UsageTimeline.start(Math.floor(Date.now() / 1000), 0);
    let metered = 0n;
    let kernelNanos = 0n;
    for (;;) {
      await new Promise((r) => setTimeout(r, 1000));
      const counters = await backend.counters(burnId).catch(() => undefined);
      if (!counters) break;
      kernelNanos = counters.cpuNanos;
      const slice = timeline.sample(Math.floor(Date.now() / 1000), counters);
      if (slice) metered += slice.cpuMillis;
    }
    const finished = timeline.finish(Math.floor(Date.now() / 1000) + 1, await backend.finalCounters(burnId));
    if (finished) metered += finished.cpuMillis;
    const meteredSeconds = Number(metered) / 1000;
    const errorPct = ((meteredSeconds - burnSeconds) / burnSeconds) * 100;
    console.log(`burn ${burnSeconds} s of one core (1000m quota), metered every 1 s`);
    console.log(`  metered                    ${meteredSeconds.toFixed(3)} CPU-s (kernel counter at the last sample ${(Number(kernelNanos) / 1e9).toFixed(3)} s)`);
    console.log(`  error                      ${errorPct.toFixed(2)} %`);

    // ---- 3. a short job, billed from the counters read after its exit
    const shortId = `${prefix}-short`;
    ids.push(shortId);
    const own = 'cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || echo $(( $(sed -n "s/^usage_usec //p" /sys/fs/cgroup/cpu.stat) * 1000 ))';
    const short = parseManifest({
      image: IMAGE,
      command: ['sh', '-c', `i=0; while [ $i -lt ${shortWork} ]; do i=$((i+1)); done; echo cpu $(${own})`],
      resources: { cpuMillis: 1000, memoryBytes: 32 * 2 ** 20 },
      maxDurationSeconds: 600,
    });
    await startLease(shortId, short);
    await backend.wait(shortId);
    let ownNanos = 0n;
    for await (const line of backend.logs(shortId)) if (line.text.startsWith('cpu ')) ownNanos = BigInt(line.text.slice(4).trim());
    const shortTimeline = UsageTimeline.start(0, 0);
    const final = await backend.finalCounters(shortId);
    const billedMs = shortTimeline.finish(1, final)?.cpuMillis ?? 0n;
    const ownMs = Number(ownNanos) / 1e6;
    const shortErrorPct = ((Number(billedMs) - ownMs) / ownMs) * 100;
    console.log(`short job (${shortWork} loop rounds), exits before any sample`);
    console.log(`  billed                     ${(Number(billedMs) / 1000).toFixed(3)} CPU-s (its own cgroup counted ${(ownMs / 1000).toFixed(3)} s)`);
    console.log(`  error                      ${shortErrorPct.toFixed(2)} %${final ? '' : ' (no final counters on this host: billed 0)'}`);
    console.log(JSON.stringify({ cpu_error_pct: Number(errorPct.toFixed(3)), short_job_cpu_error_pct: Number(shortErrorPct.toFixed(3)), daemon_cpu_pct_per_lease: Number(pctPerLease.toFixed(5)) }));
  } finally {
    for (const id of ids) await backend.remove(id).catch(() => sh('docker', ['rm', '-f', `provider-lease-${id}`]).catch(() => undefined));
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
