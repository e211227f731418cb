import { readdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KEPT_CAPABILITIES, containerName } from '../../../src/runtime';
import { isProviderError } from '../../../src/errors';
import { aManifest, GPU_A } from '../../fixtures/runtime';
import { RuntimeHarness, sh, until } from './harness';

jest.setTimeout(60_000);

const MiB = 2 ** 20;
const CAP_BITS: Record<string, number> = { CHOWN: 0, DAC_OVERRIDE: 1, FOWNER: 3, KILL: 5, SETGID: 6, SETUID: 7, NET_BIND_SERVICE: 10 };

const h = new RuntimeHarness({ runtime: { pidsLimit: 64, nofileLimit: 4096, logMaxSize: 256 * 1024, logMaxFiles: 2, stopTimeoutSeconds: 5, portRange: { from: 39100, to: 39199 } } });
let image: string;

beforeAll(async () => {
  image = await h.imageId();
});
afterAll(() => h.cleanup());

describe('lease container against the real engine', () => {
  test('gets exactly the limits, capabilities, security options, labels and log config asked', async () => {
    const leaseId = h.leaseId('spec');
    const manifest = aManifest({
      args: ['sleep', '300'],
      env: { GREETING: 'hi' },
      ports: [{ containerPort: 8080 }],
      resources: { cpuMillis: 250, memoryBytes: 96 * MiB, shmBytes: 16 * MiB, diskBytes: 50 * MiB },
    });
    const started = await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest, { hostPorts: [39111] }), imageId: image });
    expect(started.ports).toEqual([{ containerPort: 8080, protocol: 'tcp', hostPort: 39111 }]);
    expect((await h.runtime.status(leaseId)).ports).toEqual([{ containerPort: 8080, protocol: 'tcp', hostPort: 39111 }]);

    const info = await h.docker.getContainer(containerName(leaseId)).inspect();
    const hc = info.HostConfig as typeof info.HostConfig & Record<string, unknown>;
    expect(info.Name).toBe(`/provider-lease-${leaseId}`);
    expect(info.State.Running).toBe(true);
    expect(hc.NanoCpus).toBe(250_000_000);
    expect(hc.Memory).toBe(96 * MiB);
    expect(hc.MemorySwap).toBe(96 * MiB);
    expect(hc.PidsLimit).toBe(64);
    expect(hc.ShmSize).toBe(16 * MiB);
    expect(hc.Ulimits).toEqual([{ Name: 'nofile', Soft: 4096, Hard: 4096 }]);
    expect(hc.Init).toBe(true);
    expect(hc.Privileged).toBe(false);
    expect(hc.CapDrop).toEqual(['ALL']);
    expect([...(hc.CapAdd ?? [])].sort()).toEqual([...KEPT_CAPABILITIES].sort());
    expect(hc.SecurityOpt).toEqual(['no-new-privileges:true']);
    expect(hc.NetworkMode).toBe(`provider-lease-${leaseId}`);
    expect(hc.PidMode).toBe('');
    expect(hc.IpcMode).toBe('private');
    expect(hc.CgroupnsMode).toBe('private');
    expect(hc.Binds ?? []).toEqual([]);
    expect(hc.Devices ?? []).toEqual([]);
    expect(hc.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': String(256 * 1024), 'max-file': '2' } });
    expect(hc.RestartPolicy?.Name).toBe('no');
    expect((info.Config as { StopTimeout?: number }).StopTimeout).toBe(5);
    expect(info.Config.Labels).toMatchObject({ 'provider.managed': 'true', 'provider.lease-id': leaseId, 'provider.disk-bytes': String(50 * MiB) });
    expect(info.Config.Env).toEqual(expect.arrayContaining(['GREETING=hi', 'NVIDIA_VISIBLE_DEVICES=void']));
    expect(info.Mounts).toEqual([]);

    // What the kernel actually gives the process, not just what Docker recorded.
    const status = (await h.execIn(leaseId, 'cat /proc/1/status')).stdout;
    const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1]}`);
    const expected = Object.values(CAP_BITS).reduce((acc, bit) => acc | (1n << BigInt(bit)), 0n);
    expect(capEff).toBe(expected);
    expect(/^NoNewPrivs:\s*(\d)/m.exec(status)?.[1]).toBe('1');
    expect(/^Seccomp:\s*(\d)/m.exec(status)?.[1]).toBe('2');
    expect((await h.execIn(leaseId, 'df -k /dev/shm | tail -n 1')).stdout).toMatch(/\b16384\b/);
    // The cgroup limits as the kernel holds them (v2 file first, then v1).
    const cg = async (v2: string, v1: string) => (await h.execIn(leaseId, `cat /sys/fs/cgroup/${v2} 2>/dev/null || cat /sys/fs/cgroup/${v1}`)).stdout.trim();
    expect(await cg('cpu.max', 'cpu/cpu.cfs_quota_us')).toMatch(/^25000\b/);
    expect(await cg('pids.max', 'pids/pids.max')).toBe('64');
    expect(await cg('memory.max', 'memory/memory.limit_in_bytes')).toBe(String(96 * MiB));
    expect(await cg('memory.swap.max', 'memory/memory.memsw.limit_in_bytes')).toMatch(new RegExp(`^(0|${96 * MiB})$`));
    expect((await h.execIn(leaseId, 'ulimit -n')).stdout.trim()).toBe('4096');
    // NET_RAW is gone: no raw sockets (ping needs one).
    expect((await h.execIn(leaseId, 'ping -c1 -W1 127.0.0.1')).code).not.toBe(0);
    expect((await h.execIn(leaseId, 'mknod /tmp/x c 1 3')).code).not.toBe(0);
  });

  test('a read-only root fs leaves a writable tmpfs scratch on /tmp', async () => {
    const ro = new RuntimeHarness({ runtime: { nofileLimit: 4096, readOnlyRootfs: true, tmpfsBytes: '16MiB' } });
    try {
      const leaseId = ro.leaseId('ro');
      const manifest = aManifest({ args: ['sleep', '300'] });
      await ro.runtime.start({ manifest, allocation: ro.allocation(leaseId, manifest), imageId: image });
      expect((await ro.execIn(leaseId, 'touch /root/x')).code).not.toBe(0);
      expect((await ro.execIn(leaseId, 'echo ok > /tmp/x && cat /tmp/x')).stdout.trim()).toBe('ok');
      expect((await ro.execIn(leaseId, 'df -k /tmp | tail -n 1')).stdout).toMatch(/16384/);
    } finally {
      await ro.cleanup();
    }
  });

  test('reports the exit code of a workload that ends, and its logs with tail and since', async () => {
    const leaseId = h.leaseId('exit');
    const manifest = aManifest({ command: ['sh', '-c'], args: ['echo one; echo two >&2; sleep 0.2; echo three; exit 3'] });
    await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    const report = await h.runtime.wait(leaseId);
    expect(report).toMatchObject({ exitCode: 3, oomKilled: false, reason: 'failed' });
    const all = [];
    for await (const line of h.runtime.logs(leaseId)) all.push(line);
    // stdout and stderr are separate pipes: order is kept within a stream only.
    expect(all.filter((l) => l.stream === 'stdout').map((l) => l.text)).toEqual(['one', 'three']);
    expect(all.filter((l) => l.stream === 'stderr').map((l) => l.text)).toEqual(['two']);
    const tail = [];
    for await (const line of h.runtime.logs(leaseId, { tail: 1 })) tail.push(line.text);
    expect(tail).toEqual(['three']);
    const followed = [];
    for await (const line of h.runtime.logs(leaseId, { follow: true })) followed.push(line.text);
    expect(followed.sort()).toEqual(['one', 'three', 'two']);
    const future = [];
    for await (const line of h.runtime.logs(leaseId, { since: Date.now() / 1000 + 60 })) future.push(line);
    expect(future).toEqual([]);
  });

  test('stops gracefully with SIGTERM, and kills a workload that ignores it', async () => {
    const polite = h.leaseId('term');
    const stubborn = h.leaseId('kill');
    const m1 = aManifest({ command: ['sh', '-c'], args: ["trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done"] });
    const m2 = aManifest({ command: ['sh', '-c'], args: ["trap '' TERM; while true; do sleep 0.2; done"] });
    await h.runtime.start({ manifest: m1, allocation: h.allocation(polite, m1), imageId: image });
    await h.runtime.start({ manifest: m2, allocation: h.allocation(stubborn, m2), imageId: image });
    await h.runtime.stop(polite, 'requested');
    expect(await h.runtime.wait(polite)).toMatchObject({ exitCode: 0, reason: 'requested' });
    const t0 = Date.now();
    await h.runtime.stop(stubborn, 'max-duration', { timeoutSeconds: 1 });
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(await h.runtime.wait(stubborn)).toMatchObject({ exitCode: 137, reason: 'max-duration' });
    await h.runtime.stop(stubborn, 'requested'); // stopping a stopped lease is fine
  });

  test('contains a fork bomb at the pids limit and reports the refused forks', async () => {
    const leaseId = h.leaseId('forkbomb');
    const manifest = aManifest({ args: ['sleep', '600'], resources: { cpuMillis: 500, memoryBytes: 128 * MiB } });
    await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    // The bomb runs beside the workload: its shell dies at the first refused fork, its children stay.
    await h.execIn(leaseId, 'while true; do sleep 600 & done');
    const counters = await until('the pids limit to refuse forks', async () => {
      const c = await h.runtime.sampleLimits(leaseId);
      return (c.pidsLimitHits ?? 0) > 0 ? c : undefined;
    });
    expect(counters.pidsCurrent).toBeLessThanOrEqual(64);
    expect((await h.runtime.inspect(leaseId)).State.Running).toBe(true);
    await h.runtime.stop(leaseId, 'requested', { timeoutSeconds: 1 });
    const report = await h.runtime.wait(leaseId);
    expect(report.pidsLimitHits).toBeGreaterThan(0);
    expect(report.reason).toBe('requested');
  });

  test('reports a memory bomb as OOM-killed', async () => {
    const leaseId = h.leaseId('oom');
    const manifest = aManifest({ command: ['dd'], args: ['if=/dev/zero', 'of=/dev/null', 'bs=256M', 'count=1'], resources: { cpuMillis: 500, memoryBytes: 32 * MiB } });
    await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    const report = await h.runtime.wait(leaseId);
    expect(report).toMatchObject({ oomKilled: true, reason: 'oom-killed' });
    expect(report.exitCode).not.toBe(0);
  });

  test('keeps a log flood within max-size x max-file on disk', async () => {
    const leaseId = h.leaseId('flood');
    const manifest = aManifest({ command: ['sh', '-c'], args: ['yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 8000000; echo done'] });
    await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    expect((await h.runtime.wait(leaseId)).exitCode).toBe(0);
    const logPath = (await h.runtime.inspect(leaseId)).LogPath;
    const dir = dirname(logPath);
    const files = (await readdir(dir)).filter((f) => f.includes('-json.log'));
    let total = 0;
    for (const f of files) total += (await stat(`${dir}/${f}`)).size;
    expect(files.length).toBeLessThanOrEqual(2);
    expect(total).toBeLessThanOrEqual(2 * 256 * 1024 + 64 * 1024);
  });

  test('stops a lease whose writable layer outgrows its diskBytes with reason disk-quota', async () => {
    const leaseId = h.leaseId('disk');
    const manifest = aManifest({ command: ['sh', '-c'], args: ['dd if=/dev/zero of=/big bs=1M count=6 2>/dev/null; sleep 600'], resources: { cpuMillis: 500, memoryBytes: 64 * MiB, diskBytes: 2 * MiB } });
    await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    await until('the file to be written', async () => ((await h.execIn(leaseId, 'ls -l /big')).stdout.includes('6291456') ? true : undefined));
    const stopped = await h.runtime.enforceDiskQuota();
    expect(stopped).toContain(leaseId);
    expect(await h.runtime.wait(leaseId)).toMatchObject({ reason: 'disk-quota' });
  });

  test('fails a GPU lease on an engine without the NVIDIA runtime, clearly, and leaves nothing behind', async () => {
    const leaseId = h.leaseId('gpu');
    const manifest = aManifest({ gpus: 1, args: ['true'] });
    let error: unknown;
    try {
      await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest, { gpuUuids: [GPU_A] }), imageId: image });
    } catch (err) {
      error = err;
    }
    expect(isProviderError(error, 'NVIDIA_RUNTIME_MISSING')).toBe(true);
    expect((error as Error).message).toMatch(/no NVIDIA runtime/);
    expect((error as { fix?: string }).fix).toMatch(/NVIDIA Container Toolkit/);
    expect((await h.runtime.list()).map((c) => c.leaseId)).not.toContain(leaseId);
    await expect(sh('docker', ['network', 'inspect', `provider-lease-${leaseId}`])).rejects.toBeDefined();
    // The start had installed the lease's chains alongside the container create; none may stay.
    const { forward, input } = h.firewall.chainsOf(leaseId);
    const present = await h.firewall.leaseChainsPresent();
    expect(present).not.toContain(forward);
    expect(present).not.toContain(input);
  });

  test('lists its containers by label, reports the ones no lease owns, and removes everything of a lease', async () => {
    const leaseId = h.leaseId('list');
    const manifest = aManifest({ args: ['sleep', '300'] });
    await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    const listed = await h.runtime.list();
    expect(listed.find((c) => c.leaseId === leaseId)).toMatchObject({ running: true, image: 'provider-test/busybox:latest' });
    const { orphans, missing } = await h.runtime.reconcile(['some-lease-without-container']);
    expect(orphans.map((o) => o.leaseId)).toContain(leaseId);
    expect(missing).toEqual(['some-lease-without-container']);
    await h.runtime.remove(leaseId);
    expect((await h.runtime.list()).map((c) => c.leaseId)).not.toContain(leaseId);
    await h.runtime.remove(leaseId); // idempotent
  });

  test('a second start of a running lease returns it and leaves it running; of an ended one, refuses', async () => {
    const leaseId = h.leaseId('twice');
    const manifest = aManifest({ args: ['sleep', '300'] });
    const first = await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    const second = await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    expect(second.containerId).toBe(first.containerId);
    expect((await h.runtime.inspect(leaseId)).State.Running).toBe(true);
    await h.runtime.stop(leaseId, 'requested', { timeoutSeconds: 0 });
    await expect(h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image })).rejects.toMatchObject({ code: 'CONTAINER_CREATE_FAILED' });
    expect((await h.runtime.inspect(leaseId)).Id).toBe(first.containerId);
  });

  test('refuses to start a lease whose host port is taken, and cleans up', async () => {
    const a = h.leaseId('porta');
    const b = h.leaseId('portb');
    const manifest = aManifest({ args: ['sleep', '300'], ports: [{ containerPort: 80 }] });
    await h.runtime.start({ manifest, allocation: h.allocation(a, manifest, { hostPorts: [39150] }), imageId: image });
    await expect(h.runtime.start({ manifest, allocation: h.allocation(b, manifest, { hostPorts: [39150] }), imageId: image })).rejects.toMatchObject({ code: 'PORT_UNAVAILABLE' });
    expect((await h.runtime.list()).map((c) => c.leaseId)).not.toContain(b);
  });
});
