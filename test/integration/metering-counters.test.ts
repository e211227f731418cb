import Docker from 'dockerode';
import { silentLogger } from '../../src/log';
import { ContainerCounterReader, hostKernelFiles, UsageTimeline } from '../../src/metering';
import { DockerBackend } from '../../src/runtime';
import { systemClock } from '../../src/util/clock';
import { aManifest } from '../fixtures/runtime';
import { until } from '../support/until';
import { RuntimeHarness } from './runtime/harness';

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
