/**
 * Time from "start lease container" to running, through the runtime (hardened container on the
 * lease's own network, created, started), under runc and under gVisor (runsc), against
 * `docker run -d` of the same image in the same run: the baseline every ratio is against. Runs
 * alternate so all see the same engine state.
 *
 * `lease runc` / `lease runsc` are `LeaseRuntime.start` with runtime.sandbox set, the lease network
 * and firewall prepared beforehand (`prepareNetwork`, which the lease engine runs while the image
 * is pulled); `lease runc, cold` also counts creating the network and installing the rules inside
 * `start`; `docker run -d --runtime=runsc` is gVisor's own cost without anything of ours. The runsc
 * rows are left out, and say so, when Docker has no runsc runtime.
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

type Mode = 'lease-runc' | 'lease-runsc' | 'lease-runc-cold' | 'docker-run' | 'docker-run-runsc';

export async function run(args: string[]): Promise<void> {
  const runs = Number(option(args, 'runs', '15'));
  const imageRef = option(args, 'image', 'provider-test/busybox:latest');
  const docker = new Docker({ socketPath: '/var/run/docker.sock' });
  const log = silentLogger();
  const firewall = new Firewall(execFileAsync, log);
  const runtimeUnder = (sandbox: 'runc' | 'runsc'): LeaseRuntime => {
    const config = configSchema.parse({ dataDir: '/tmp/provider-bench', runtime: { sandbox } });
    return new LeaseRuntime({ docker, firewall, images: new ImageService(docker, config, log, systemClock), config, log, clock: systemClock });
  };
  const runtimes = { runc: runtimeUnder('runc'), runsc: runtimeUnder('runsc') };
  const info = (await docker.info()) as { Runtimes?: Record<string, unknown> };
  const runsc = Object.keys(info.Runtimes ?? {}).includes('runsc');
  const prepared = await new ImageService(docker, configSchema.parse({ dataDir: '/tmp/provider-bench' }), log, systemClock).prepare(imageRef);
  const manifest = parseManifest({ image: imageRef, args: ['sleep', '300'], resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 }, maxDurationSeconds: 600 });
  const tag = `bench${process.pid.toString(36)}`;

  const startLease = async (i: number, sandbox: 'runc' | 'runsc', prepare: boolean): Promise<number> => {
    const runtime = runtimes[sandbox];
    const leaseId = `${tag}-${sandbox === 'runsc' ? 'g' : prepare ? 'w' : 'c'}${i}`;
    if (prepare) await runtime.prepareNetwork(leaseId, manifest);
    try {
      const t0 = performance.now();
      await runtime.start({ manifest, allocation: { leaseId, cpuMillis: 500, memoryBytes: 64 * 2 ** 20, gpuUuids: [], hostPorts: [] }, imageId: prepared.id });
      return performance.now() - t0;
    } finally {
      await runtime.remove(leaseId);
    }
  };
  const startRaw = async (i: number, extra: string[]): Promise<number> => {
    const name = `provider-${tag}-raw-${extra.length > 0 ? 'g' : ''}${i}`;
    try {
      const t0 = performance.now();
      await run$('docker', ['run', '-d', ...extra, '--name', name, imageRef, 'sleep', '300']);
      return performance.now() - t0;
    } finally {
      await run$('docker', ['rm', '-f', name]).catch(() => undefined);
    }
  };
  const modes: [Mode, string, (i: number) => Promise<number>][] = [
    ['docker-run', 'docker run -d (baseline)', (i) => startRaw(i, [])],
    ['lease-runc', 'lease, runc', (i) => startLease(i, 'runc', true)],
    ['lease-runc-cold', 'lease, runc, cold (network + rules inside start)', (i) => startLease(i, 'runc', false)],
  ];
  if (runsc) {
    modes.push(['lease-runsc', 'lease, runsc (gVisor)', (i) => startLease(i, 'runsc', true)]);
    modes.push(['docker-run-runsc', 'docker run -d --runtime=runsc', (i) => startRaw(i, ['--runtime=runsc'])]);
  }

  process.stdout.write(`container-start: ${runs} runs of each, alternating (${imageRef})\n`);
  if (!runsc) process.stdout.write('  runsc rows left out: Docker has no runsc runtime (provisioners/install.sh --with-gvisor registers it)\n');
  // One warm-up of each: first-use costs (image layers in page cache, iptables modules) are not what is measured.
  for (const [, , start] of modes) await start(-1);
  const times = new Map<Mode, number[]>(modes.map(([mode]) => [mode, []]));
  for (let i = 0; i < runs; i += 1) {
    for (const [mode, , start] of modes) times.get(mode)?.push(await start(i));
  }
  const medians = new Map([...times].map(([mode, values]) => [mode, median(values)]));
  const baseline = medians.get('docker-run') as number;
  const fmt = (v: number) => `${v.toFixed(1)} ms`.padStart(9);
  const width = Math.max(...modes.map(([, label]) => label.length));
  for (const [mode, label] of modes) {
    const values = times.get(mode) as number[];
    const m = medians.get(mode) as number;
    process.stdout.write(`  ${label.padEnd(width)}  median ${fmt(m)}  (min ${fmt(Math.min(...values))}, max ${fmt(Math.max(...values))})  ${(m / baseline).toFixed(2)}x\n`);
  }
  const ratio = (mode: Mode) => (medians.has(mode) ? Number(((medians.get(mode) as number) / baseline).toFixed(3)) : null);
  const ms = (mode: Mode) => (medians.has(mode) ? Number((medians.get(mode) as number).toFixed(1)) : null);
  process.stdout.write(`  lease runc within 1.2x of docker run: ${(ratio('lease-runc') as number) <= 1.2 ? 'yes' : 'no'}\n`);
  process.stdout.write(
    `${JSON.stringify({
      runs,
      docker_run_ms_median: ms('docker-run'),
      ours_ms_median: ms('lease-runc'),
      ratio: ratio('lease-runc'),
      ours_cold_ms_median: ms('lease-runc-cold'),
      ours_runsc_ms_median: ms('lease-runsc'),
      ratio_runsc: ratio('lease-runsc'),
      docker_run_runsc_ms_median: ms('docker-run-runsc'),
      ratio_docker_run_runsc: ratio('docker-run-runsc'),
    })}\n`,
  );
}
