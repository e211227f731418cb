import Docker from 'dockerode';
import { BenchRunner, benchContainerSpec, parseBenchOutput, type BenchDocker } from '../../../src/benchmark';
import { configSchema } from '../../../src/config';
import { silentLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';

jest.setTimeout(60_000);

const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const GPU = 'GPU-3b0f9b5e-8c1a-4a53-9e2b-6f6b1d1c2a11';
const LINE = `{"uuid":"${GPU}","name":"NVIDIA H200","cudaDriverVersion":"12.4","memoryBandwidthGBps":4012.7,"matmulFp32Tflops":51.35,"matmulFp16Tflops":611.2,"durationMs":2874}`;
const config = configSchema.parse({ dataDir: '/nonexistent', gpu: { benchmark: { image: 'provider-test/busybox:latest' } } });

async function leftovers(): Promise<string[]> {
  const containers = await docker.listContainers({ all: true, filters: { label: ['provider.gpu-bench'] } });
  return containers.map((c) => c.Names.join(','));
}

afterAll(async () => {
  for (const c of await docker.listContainers({ all: true, filters: { label: ['provider.gpu-bench'] } })) await docker.getContainer(c.Id).remove({ force: true });
});

describe('the benchmark container on the real engine (no GPU here)', () => {
  it('is accepted by Docker as built, less the GPU: no network, a read-only root, no capabilities, and its line read back', async () => {
    // This machine has no NVIDIA runtime: the device request is the one field taken out, and a
    // shell stands in for the CUDA program, probing what the spec promises.
    const docked: BenchDocker = {
      createContainer: (spec) =>
        docker.createContainer({
          ...spec,
          Entrypoint: ['sh', '-c', `ls /sys/class/net | grep -v '^lo$' && exit 7; touch /probe 2>/dev/null && exit 8; echo "gpu-bench: progress" >&2; echo '${LINE}'`],
          HostConfig: { ...spec.HostConfig, DeviceRequests: [] },
        }) as never,
    };
    const out = await new BenchRunner({ docker: docked, config, clock: systemClock, log: silentLogger() }).run(GPU);
    expect(out).toEqual({ ...parseBenchOutput(LINE), measuredAt: expect.any(String) });
    expect(await leftovers()).toEqual([]);
  });

  it('fails with GPU_BENCH_FAILED and a fix where Docker cannot hand out the GPU, leaving no container', async () => {
    const runner = new BenchRunner({ docker: docker as unknown as BenchDocker, config, clock: systemClock, log: silentLogger() });
    await expect(runner.run(GPU)).rejects.toMatchObject({ code: 'GPU_BENCH_FAILED', fix: expect.stringContaining('provider doctor') });
    expect(await leftovers()).toEqual([]);
    expect(benchContainerSpec(GPU, config).HostConfig.DeviceRequests).toEqual([{ Driver: 'nvidia', DeviceIDs: [GPU], Capabilities: [['gpu']] }]);
  });
});
