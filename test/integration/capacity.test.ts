import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { DockerProbe, type CapacityReport } from '../../src/capacity';
import { runCli, type CliRun } from '../support/cli-io';

// Capacity against the real Docker engine of this machine (see .ci/run) and the fake nvidia-smi.
const DOCKER_SOCKET = '/var/run/docker.sock';
const FAKE_BIN = join(__dirname, '..', 'fixtures', 'bin');
// The engine shares the host kernel's cgroup hierarchy: v2 mounts cgroup.controllers at the root.
const HOST_CGROUP_VERSION = existsSync('/sys/fs/cgroup/cgroup.controllers') ? 2 : 1;

let scratch: string;
beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'provider-capacity-'));
  await engineAnswering(new Docker({ socketPath: DOCKER_SOCKET }), 30_000);
}, 35_000);

/** The engine is shared by every suite on the machine; one may be restarting it (live-restore tests). */
async function engineAnswering(docker: Docker, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      await docker.ping();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('DockerProbe against the real engine', () => {
  it('reads the engine: reachable, cgroup version, overlay2, runtimes, and no GPU passthrough without the nvidia runtime', async () => {
    const info = await new DockerProbe(new Docker({ socketPath: DOCKER_SOCKET }), { socketPath: DOCKER_SOCKET, timeoutMs: 10_000 }).probe();
    expect(info.engineVersion).toMatch(/^\d+\.\d+/);
    expect(info.apiVersion).toMatch(/^1\.\d+$/);
    expect(info.osType).toBe('linux');
    expect(info.cgroupVersion).toBe(HOST_CGROUP_VERSION);
    expect(info.storageDriver).toBe('overlay2');
    expect(info.runtimes).toContain('runc');
    expect(info.defaultRuntime).toBe('runc');
    expect(info.gpuPassthrough.possible).toBe(false);
    expect(info.gpuPassthrough.nvidiaRuntime).toBe(false);
    expect(info.gpuPassthrough.nvidiaHook).toBeNull();
    expect(info.gpuPassthrough.reasonCode).toBe('docker-has-no-nvidia-runtime');
    expect(info.gpuPassthrough.reason).toContain('Docker has no nvidia runtime');
  });

  it('reports an engine at a socket path that does not exist as unreachable, saying so', async () => {
    const bogus = join(scratch, 'no-such', 'docker.sock');
    await expect(new DockerProbe(new Docker({ socketPath: bogus }), { socketPath: bogus, timeoutMs: 5_000 }).probe()).rejects.toMatchObject({
      code: 'DOCKER_UNREACHABLE',
      message: `no Docker socket at ${bogus}: the engine is not installed or not running`,
    });
  });

  it('gives up on a socket that accepts connections but never answers', async () => {
    const path = join(scratch, 'silent.sock');
    const held: Socket[] = [];
    const server: Server = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    try {
      await expect(new DockerProbe(new Docker({ socketPath: path }), { socketPath: path, timeoutMs: 300 }).probe()).rejects.toMatchObject({
        code: 'DOCKER_TIMEOUT',
      });
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/** Runs the CLI in-process with its own environment: no config file, the fake nvidia-smi. */
function runCapacity(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return runCli(['--data-dir', join(scratch, 'data'), '--log-level', 'silent', ...args], { env: { PATH: process.env.PATH, ...env }, cwd: scratch });
}

describe('provider capacity', () => {
  it('prints the JSON report with the GPUs of the fake nvidia-smi named by PROVIDER_NVIDIA_SMI', async () => {
    const { code, stdout } = await runCapacity(['capacity', '--json'], {
      PROVIDER_NVIDIA_SMI: join(FAKE_BIN, 'nvidia-smi'),
      FAKE_NVIDIA_SMI_FIXTURE: 'a100-mig-535',
    });
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as CapacityReport;
    expect(report.schemaVersion).toBe(1);
    expect(report.dataDir).toBe(join(scratch, 'data'));
    expect(report.cpu.ok && report.memory.ok && report.disk.ok && report.docker.ok).toBe(true);
    expect(report.disk).toMatchObject({ ok: true, dataDir: join(scratch, 'data'), probedPath: expect.any(String) });
    expect(report.gpus).toMatchObject({ ok: true, driverVersion: '535.129.03', cudaVersion: '12.2' });
    if (!report.gpus.ok) return;
    expect(report.gpus.devices.map((gpu) => [gpu.index, gpu.uuid, gpu.mig.current, gpu.mig.devices.map((d) => `${d.profile} ${d.uuid}`)])).toEqual([
      [
        0,
        'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77',
        'enabled',
        ['3g.20gb MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f', '2g.10gb MIG-cba663e8-9bed-5b26-b243-5deb0e55c1e8', '1g.5gb MIG-1d4cb2a1-7f0e-5c39-8a6d-0e2b9f4c7a15'],
      ],
      [1, 'GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30', 'disabled', []],
    ]);
    // This engine has no nvidia runtime: every unit is listed as not offered, with that reason.
    expect(report.allocatable.gpus).toEqual([]);
    expect(report.allocatable.gpusNotOffered.map((unit) => [unit.uuid, unit.reason])).toEqual([
      ['GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77', 'mig-enabled-offered-as-mig-devices'],
      ['MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f', 'docker-has-no-nvidia-runtime'],
      ['MIG-cba663e8-9bed-5b26-b243-5deb0e55c1e8', 'docker-has-no-nvidia-runtime'],
      ['MIG-1d4cb2a1-7f0e-5c39-8a6d-0e2b9f4c7a15', 'docker-has-no-nvidia-runtime'],
      ['GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30', 'docker-has-no-nvidia-runtime'],
    ]);
    expect(report.allocatable.cpuMillis).toBeGreaterThanOrEqual(0);
    expect(report.notDetected).toEqual([]);
  });

  it('still answers and exits 0 when nvidia-smi fails and Docker is unreachable, saying why', async () => {
    const { code, stdout } = await runCapacity(['--set', `docker.socketPath=${join(scratch, 'gone.sock')}`, 'capacity', '--json'], {
      PROVIDER_NVIDIA_SMI: join(FAKE_BIN, 'nvidia-smi-driver-failure'),
    });
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as CapacityReport;
    expect(report.cpu.ok).toBe(true);
    expect(report.notDetected.map((missing) => [missing.part, missing.code])).toEqual([
      ['gpus', 'NVIDIA_SMI_FAILED'],
      ['docker', 'DOCKER_UNREACHABLE'],
    ]);
    expect(report.notDetected[0]?.reason).toContain("couldn't communicate with the NVIDIA driver");
  });

  it('prints a readable table with a not-detected section when there is no nvidia-smi', async () => {
    const { code, stdout } = await runCapacity(['capacity'], { PROVIDER_NVIDIA_SMI: join(scratch, 'missing-nvidia-smi') });
    expect(code).toBe(0);
    expect(stdout).toMatch(/^CPU {5}\S/m);
    expect(stdout).toMatch(/^Docker  .*\n\s+cgroup v\d/m);
    expect(stdout).toContain('GPU passthrough: no: Docker has no nvidia runtime');
    expect(stdout).toMatch(/Allocatable \(detected minus reserve\)\n +RESOURCE +DETECTED +RESERVE +ALLOCATABLE/);
    expect(stdout).toContain(`Not detected\n  gpus: nvidia-smi not found (no file at ${join(scratch, 'missing-nvidia-smi')})`);
  });

  it('lets --set gpu.nvidiaSmiPath win over PROVIDER_NVIDIA_SMI', async () => {
    const { stdout } = await runCapacity(['--set', `gpu.nvidiaSmiPath=${join(FAKE_BIN, 'nvidia-smi')}`, 'capacity', '--json'], {
      PROVIDER_NVIDIA_SMI: join(FAKE_BIN, 'nvidia-smi-driver-failure'),
      FAKE_NVIDIA_SMI_FIXTURE: 'rtx4090-535',
    });
    const report = JSON.parse(stdout) as CapacityReport;
    expect(report.gpus.ok && report.gpus.devices.map((gpu) => gpu.model)).toEqual(['NVIDIA GeForce RTX 4090']);
  });
});
