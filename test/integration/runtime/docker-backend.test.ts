import Docker from 'dockerode';
import { ContainerCounterReader, hostKernelFiles } from '../../../src/metering';
import { DockerBackend, Firewall, ImageService, LeaseRuntime, type Manifest } from '../../../src/runtime';
import { silentLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { aConfig, aManifest } from '../../fixtures/runtime';
import { describeLeaseBackend, type ContractWorkload, type LeaseBackendFixture } from '../../contract/lease-backend.contract';
import { SilentEngine } from '../../support/silent-engine';
import { RuntimeHarness, describeEachSandbox, type TestSandbox } from './harness';

jest.setTimeout(60_000);

/** Single quotes for sh: the contract's texts are plain words, this keeps them so. */
const quoted = (text: string): string => `'${text.replace(/'/g, `'\\''`)}'`;

/** A busybox workload that writes its lines, then exits with its code or sleeps until stopped. */
function workloadManifest(workload: ContractWorkload): Manifest {
  const writes = (workload.lines ?? []).map((l) => `echo ${quoted(l.text)}${l.stream === 'stderr' ? ' >&2' : ''}`);
  const end = workload.exitCode === undefined ? 'exec sleep 3600' : `exit ${workload.exitCode}`;
  return aManifest({ command: ['sh', '-c'], args: [[...writes, end].join('; ')] });
}

function dockerBackend(h: { docker: Docker; runtime: LeaseRuntime; images: ImageService; config: RuntimeHarness['config'] }): DockerBackend {
  return new DockerBackend({ ...h, counters: new ContainerCounterReader(hostKernelFiles()), clock: systemClock, log: silentLogger() });
}

async function dockerFixture(sandbox: TestSandbox): Promise<LeaseBackendFixture> {
  const h = new RuntimeHarness({ runtime: { stopTimeoutSeconds: 2, nofileLimit: 4096, sandbox } });
  return {
    backend: dockerBackend(h),
    runtimeId: (name) => h.leaseId(name),
    manifest: workloadManifest,
    execCommand: ({ stdout, stderr, exitCode }) => ['sh', '-c', `printf %s ${quoted(stdout)}; printf %s ${quoted(stderr)} >&2; exit ${exitCode}`],
    unresponsive: async () => {
      const engine = new SilentEngine();
      await engine.listen();
      const timeoutMs = 300;
      const config = aConfig({});
      config.docker.requestTimeoutMs = timeoutMs;
      const docker = new Docker({ socketPath: engine.socketPath });
      const firewall = new Firewall(async () => ({ stdout: '', stderr: '' }), silentLogger());
      const images = new ImageService(docker, config, silentLogger(), systemClock);
      const runtime = new LeaseRuntime({ docker, firewall, images, config, log: silentLogger(), clock: systemClock });
      return { backend: dockerBackend({ docker, runtime, images, config }), timeoutMs, close: () => engine.close() };
    },
    cleanup: () => h.cleanup(),
  };
}

describeEachSandbox('DockerBackend', (sandbox) => describeLeaseBackend('DockerBackend', () => dockerFixture(sandbox)));
