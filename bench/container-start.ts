/**
 * Time from "start lease container" to running, through the runtime (hardened container on the
 * lease's own network, created, started, inspected), against `docker run -d` of the same image in
 * the same run. Runs alternate so all see the same engine state.
 *
 * `ours` is `LeaseRuntime.start` with the lease network and firewall prepared beforehand
 * (`prepareNetwork`, which the lease engine runs while the image is pulled); `ours cold` also
 * counts creating the network and installing the rules inside `start`.
 *
 *   npm run bench -- container-start [--runs 15] [--image provider-test/busybox:latest]
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { configSchema } from '../src/config';
import { silentLogger } from '../src/log';
import { Firewall, ImageService, LeaseRuntime, parseManifest } from '../src/runtime';
import { systemClock } from '../src/util/clock';
import { execFileAsync } from '../src/util/exec';

const run$ = promisify(execFile);

function option(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export async function run(args: string[]): Promise<void> {
  const runs = Number(option(args, 'runs', '15'));
  const imageRef = option(args, 'image', 'provider-test/busybox:latest');
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const config = configSchema.parse({ dataDir: '/tmp/provider-bench' });
  const log = silentLogger();
  const firewall = new Firewall(execFileAsync, log);
  const images = new ImageService(docker, config, log, systemClock);
  const runtime = new LeaseRuntime({ docker, firewall, images, config, log, clock: systemClock });
  const prepared = await images.prepare(imageRef);
  const manifest = parseManifest({ image: imageRef, args: ['sleep', '300'], resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 }, maxDurationSeconds: 600 });
  const tag = `bench${process.pid.toString(36)}`;

  const ours: number[] = [];
  const cold: number[] = [];
  const raw: number[] = [];
  const startOurs = async (i: number, prepare: boolean): Promise<number> => {
    const leaseId = `${tag}-${prepare ? 'w' : 'c'}${i}`;
    if (prepare) await runtime.prepareNetwork(leaseId, manifest);
    const t0 = performance.now();
    await runtime.start({ manifest, allocation: { leaseId, cpuMillis: 500, memoryBytes: 64 * 2 ** 20, gpuUuids: [], hostPorts: [] }, imageId: prepared.id });
    const ms = performance.now() - t0;
    await runtime.remove(leaseId);
    return ms;
  };
  const startRaw = async (i: number): Promise<number> => {
    const name = `provider-${tag}-raw-${i}`;
    const t0 = performance.now();
    await run$('docker', ['run', '-d', '--name', name, imageRef, 'sleep', '300']);
    const ms = performance.now() - t0;
    await run$('docker', ['rm', '-f', name]);
    return ms;
  };

  process.stdout.write(`container-start: ${runs} runs each of the lease runtime (network prepared, and cold) and \`docker run -d\` (${imageRef})\n`);
  // One warm-up of each: first-use costs (image layers in page cache, iptables modules) are not what is measured.
  await startOurs(-1, true);
  await startOurs(-1, false);
  await startRaw(-1);
  for (let i = 0; i < runs; i += 1) {
    ours.push(await startOurs(i, true));
    raw.push(await startRaw(i));
    cold.push(await startOurs(i, false));
  }
  const oursMedian = median(ours);
  const rawMedian = median(raw);
  const coldMedian = median(cold);
  const ratio = oursMedian / rawMedian;
  const fmt = (v: number) => `${v.toFixed(1)} ms`;
  process.stdout.write(`  lease runtime   median ${fmt(oursMedian)}  (min ${fmt(Math.min(...ours))}, max ${fmt(Math.max(...ours))})\n`);
  process.stdout.write(`  lease runtime, cold (network + rules inside start)  median ${fmt(coldMedian)}  (${(coldMedian / rawMedian).toFixed(2)}x)\n`);
  process.stdout.write(`  docker run -d   median ${fmt(rawMedian)}  (min ${fmt(Math.min(...raw))}, max ${fmt(Math.max(...raw))})\n`);
  process.stdout.write(`  ratio           ${ratio.toFixed(2)}x (goal: within 1.2x)\n`);
  process.stdout.write(
    `${JSON.stringify({
      ours_ms_median: Number(oursMedian.toFixed(1)),
      docker_run_ms_median: Number(rawMedian.toFixed(1)),
      ratio: Number(ratio.toFixed(3)),
      ours_cold_ms_median: Number(coldMedian.toFixed(1)),
    })}\n`,
  );
}
