import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { silentLogger } from '../../src/log';
import { ContainerCounterReader, hostKernelFiles, UsageTimeline } from '../../src/metering';
import { DockerBackend, type WorkloadCounters } from '../../src/runtime';
import { systemClock } from '../../src/util/clock';
import { aManifest } from '../fixtures/runtime';
import { until } from '../support/until';
import { RuntimeHarness, sh } from './runtime/harness';

jest.setTimeout(30_000);

const IMAGE = 'provider-test/busybox:latest';
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

describe('metering a real container (this host: cgroup v1)', () => {
  let container: Docker.Container;

  beforeAll(async () => {
    // Burns CPU for ~1.5 s, holds 32 MiB in tmpfs (charged to the memory cgroup), pings the
    // bridge gateway (this host), then idles until stopped.
    const script = [
      'end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done',
      'head -c 33554432 /dev/zero > /dev/shm/fill',
      'gw=$(ip route | awk "/default/ {print \\$3}"); ping -c 3 -i 0.2 -s 1000 $gw >/dev/null 2>&1',
      'echo done; sleep 60',
    ].join('; ');
    container = await docker.createContainer({
      Image: IMAGE,
      Cmd: ['sh', '-c', script],
      name: `provider-test-metering-${process.pid}`,
      Labels: { 'provider.test': 'metering' },
      HostConfig: { ShmSize: 64 * 2 ** 20, AutoRemove: false },
    });
    await container.start();
  });

  afterAll(async () => {
    await container?.remove({ force: true }).catch(() => undefined);
  });

  it('reads growing CPU time, the memory it holds and the traffic it sent, and bills them as intervals', async () => {
    const pid = (await container.inspect()).State.Pid;
    const reader = new ContainerCounterReader(hostKernelFiles());
    const timeline = UsageTimeline.start(0, 0);
    const first = await reader.read(pid);
    timeline.sample(1, first);

    const settled = await until('the workload to finish its script', async () => {
      const logs = (await container.logs({ stdout: true, stderr: true })).toString();
      return logs.includes('done') ? reader.read(pid) : undefined;
    }, 15_000, 100);

    expect(settled.cpuNanos).toBeGreaterThan(first.cpuNanos);
    expect(settled.cpuNanos).toBeGreaterThan(500_000_000n);
    expect(settled.memoryBytes).toBeGreaterThan(32 * 2 ** 20);
    expect(settled.memoryPeakBytes).toBeGreaterThanOrEqual(settled.memoryBytes);
    expect(settled.txBytes).toBeGreaterThan(3000n);
    expect(settled.rxBytes).toBeGreaterThan(3000n);

    const interval = timeline.sample(5, settled);
    expect(interval?.cpuMillis).toBe(settled.cpuNanos / 1_000_000n - first.cpuNanos / 1_000_000n);
    expect(interval?.txBytes).toBe(settled.txBytes - first.txBytes);
  });
});

describe('metering a lease by its runtime id, through the Docker backend', () => {
  const h = new RuntimeHarness({ runtime: { nofileLimit: 4096, stopTimeoutSeconds: 1 } });
  const backend = new DockerBackend({ ...h, counters: new ContainerCounterReader(hostKernelFiles()), clock: systemClock, log: silentLogger() });
  afterAll(() => h.cleanup());

  it('reads counters that grow while the workload burns CPU, and none once it has stopped', async () => {
    const runtimeId = h.leaseId('meter');
    const manifest = aManifest({ command: ['sh', '-c'], args: ['end=$(( $(date +%s) + 2 )); while [ $(date +%s) -lt $end ]; do :; done; echo done; exec sleep 600'] });
    const { imageId } = await backend.prepare({ runtimeId, manifest });
    await backend.start({ manifest, allocation: h.allocation(runtimeId, manifest), imageId });
    const first = await backend.counters(runtimeId);
    await until('the workload to finish burning', async () => {
      for await (const line of backend.logs(runtimeId)) if (line.text === 'done') return true;
      return undefined;
    }, 15_000, 100);
    const burnt = await backend.counters(runtimeId);
    expect(first).toBeDefined();
    expect(burnt!.cpuNanos - first!.cpuNanos).toBeGreaterThan(500_000_000n);
    expect(burnt!.memoryBytes).toBeGreaterThan(0);
    await backend.stop(runtimeId, 'requested');
    await backend.wait(runtimeId);
    expect(await backend.counters(runtimeId)).toBeUndefined();
  });
});

describe('metering what a lease used after its last sample (its own parent cgroup and bridge outlive the container)', () => {
  // A namespace with a TCP sink stands for the world (as in runtime/isolation.test.ts); no traffic leaves this machine.
  const suffix = process.pid.toString(36).slice(-4);
  const NS = `provider-it-m${suffix}`;
  const VETH_HOST = `pvtm${suffix}h`;
  const SINK = '10.213.9.2';
  const SINK_PORT = 9000;
  const h = new RuntimeHarness({ runtime: { nofileLimit: 4096, stopTimeoutSeconds: 1, egress: { allowCidrs: ['10.213.9.0/30'] } } });
  const backend = new DockerBackend({ ...h, counters: new ContainerCounterReader(hostKernelFiles()), clock: systemClock, log: silentLogger() });
  const CGROUPS = '/sys/fs/cgroup';

  beforeAll(async () => {
    await sh('ip', ['netns', 'add', NS]);
    await sh('ip', ['link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', `pvtm${suffix}n`, 'netns', NS]);
    await sh('ip', ['addr', 'add', '10.213.9.1/30', 'dev', VETH_HOST]);
    await sh('ip', ['link', 'set', VETH_HOST, 'up']);
    await sh('ip', ['netns', 'exec', NS, 'ip', 'addr', 'add', `${SINK}/30`, 'dev', `pvtm${suffix}n`]);
    await sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', `pvtm${suffix}n`, 'up']);
    // One connection, everything it brings thrown away; its stdin stays open (an nc that reads
    // EOF there closes the connection early), and it listens before any lease connects.
    await sh('sh', ['-c', `(sleep 120 | ip netns exec ${NS} busybox nc -l -p ${SINK_PORT}) </dev/null >/dev/null 2>&1 &`]);
    await until('the sink to listen', async () => {
      const { stdout } = await sh('ip', ['netns', 'exec', NS, 'busybox', 'netstat', '-ltn']);
      return stdout.includes(`:${SINK_PORT} `) || undefined;
    }, 10_000, 100);
  });

  afterAll(async () => {
    await h.cleanup();
    await sh('ip', ['netns', 'pids', NS]).then(async ({ stdout }) => {
      for (const pid of stdout.split('\n').filter(Boolean)) await sh('kill', [pid]).catch(() => undefined);
    }).catch(() => undefined);
    await sh('ip', ['link', 'del', VETH_HOST]).catch(() => undefined);
    await sh('ip', ['netns', 'del', NS]).catch(() => undefined);
  });

  /** Runs `script` as a lease of one core, samples it once right after its start, and waits for it to exit by itself. */
  async function runToExit(name: string, script: string): Promise<{ runtimeId: string; first: WorkloadCounters | undefined; lines: string[] }> {
    const runtimeId = h.leaseId(name);
    const manifest = aManifest({ command: ['sh', '-c'], args: [script], resources: { cpuMillis: 1000, memoryBytes: 64 * 2 ** 20, gpus: { count: 0 } } });
    const { imageId } = await backend.prepare({ runtimeId, manifest });
    await backend.start({ manifest, allocation: h.allocation(runtimeId, manifest), imageId });
    const first = await backend.counters(runtimeId);
    expect((await backend.wait(runtimeId)).exitCode).toBe(0);
    const lines: string[] = [];
    for await (const line of backend.logs(runtimeId)) lines.push(line.text);
    return { runtimeId, first, lines };
  }

  /** What the lease's records bill: a sample at its start, then the last interval to its exit with the final counters. */
  function billed(first: WorkloadCounters | undefined, final: WorkloadCounters): { cpuMillis: bigint; txBytes: bigint } {
    const timeline = UsageTimeline.start(0, 0);
    const intervals = [first ? timeline.sample(1, first) : undefined, timeline.finish(2, final)];
    const sum = (pick: (i: NonNullable<(typeof intervals)[number]>) => bigint): bigint => intervals.reduce((a, i) => a + (i ? pick(i) : 0n), 0n);
    return { cpuMillis: sum((i) => i.cpuMillis), txBytes: sum((i) => i.txBytes) };
  }

  function reported(lines: string[], key: string): bigint {
    const line = lines.find((l) => l.startsWith(`${key} `));
    if (!line) throw new Error(`the workload did not report ${key}: ${lines.join(' | ')}`);
    return BigInt(line.slice(key.length + 1).trim());
  }

  it('bills a one-second CPU burn that exits between samples within 1 % of the CPU time its own cgroup counted', async () => {
    // The container's own cgroup (its cgroup namespace shows it as the root) is read by the workload
    // itself as its last act: the reference, independent of the parent the daemon reads.
    const { runtimeId, first, lines } = await runToExit(
      'burn',
      // About a second of CPU as a fixed amount of work (a loaded host stretches its wall time, not its CPU).
      "i=0; while [ $i -lt 550000 ]; do i=$((i+1)); done; echo cpu $(cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || echo $(( $(sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat) * 1000 )))",
    );
    const workloadNanos = reported(lines, 'cpu');
    // The loop's CPU time depends on the host's speed; it is far above anything but the loop.
    expect(workloadNanos).toBeGreaterThan(300_000_000n);
    // Once it exited, the running counters are gone: a meter reading only those loses the burn.
    expect(await backend.counters(runtimeId)).toBeUndefined();
    expect(first!.cpuNanos).toBeLessThan(workloadNanos / 2n);
    const final = await backend.finalCounters(runtimeId);
    expect(final).toMatchObject({ memoryBytes: 0 });
    const { cpuMillis } = billed(first, final!);
    const usedMillis = workloadNanos / 1_000_000n;
    // Never less than it used (the parent holds all of it), and no more than 1 % above.
    expect(cpuMillis).toBeGreaterThanOrEqual(usedMillis);
    expect(Number(cpuMillis - usedMillis)).toBeLessThanOrEqual(Number(usedMillis) * 0.01);
  });

  it('bills the bytes a lease sent right before it exited, as its own interface counted them', async () => {
    // 40 KiB over TCP to a listener in a namespace this test made (the lease's egress allows its
    // range), then its own interface's count, then the exit.
    const { runtimeId, first, lines } = await runToExit(
      'send',
      `head -c 40960 /dev/zero | nc -w 3 ${SINK} ${SINK_PORT}; echo tx $(cat /sys/class/net/eth0/statistics/tx_bytes)`,
    );
    const sent = reported(lines, 'tx');
    expect(sent).toBeGreaterThan(40_960n);
    const final = await backend.finalCounters(runtimeId);
    const { txBytes } = billed(first, final!);
    expect(txBytes).toBe(sent);
  });

  it('removes the lease\'s parent cgroup with the lease, and reconcile collects one no lease owns', async () => {
    const { runtimeId } = await runToExit('cleanup', 'true');
    const hierarchies = readdirSync(CGROUPS);
    const parentsOf = (id: string): string[] => hierarchies.map((hier) => join(CGROUPS, hier, 'provider', `lease-${id}`)).filter((dir) => existsSync(dir));
    expect(parentsOf(runtimeId)).toContain(join(CGROUPS, 'cpuacct', 'provider', `lease-${runtimeId}`));
    await backend.remove(runtimeId);
    expect(parentsOf(runtimeId)).toEqual([]);

    const orphan = h.leaseId('orphan');
    for (const hier of ['cpuacct', 'memory']) mkdirSync(join(CGROUPS, hier, 'provider', `lease-${orphan}`), { recursive: true });
    const kept = h.leaseId('kept');
    mkdirSync(join(CGROUPS, 'cpuacct', 'provider', `lease-${kept}`), { recursive: true });
    await backend.reconcile([kept]);
    expect(parentsOf(orphan)).toEqual([]);
    expect(parentsOf(kept)).toHaveLength(1);
    await backend.remove(kept);
    expect(parentsOf(kept)).toEqual([]);
  });
});
