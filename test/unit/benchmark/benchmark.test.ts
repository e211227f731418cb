import { Wallet } from 'ethers';
import { z } from 'zod';
import { wire } from '../../../src/api';
import {
  BenchRunner,
  benchContainerSpec,
  benchmarkGpus,
  busyUuids,
  canonicalJson,
  parseBenchOutput,
  signBenchmarks,
  verifyBenchmarks,
  type BenchContainer,
  type BenchDocker,
  type BenchmarkSummary,
  type SignedBenchmarks,
} from '../../../src/benchmark';
import type { AllocatableGpu } from '../../../src/capacity';
import { configSchema } from '../../../src/config';
import { silentLogger } from '../../../src/log';
import { verifyOfferBenchmarks } from '../../../src/tenant';
import { manualClock } from '../../../src/util/clock';

const H200 = 'GPU-a4d8e2c1-5f3b-4c7e-9d21-6b0f8e3a1c57';
const SLICE = 'MIG-cba663e8-9bed-5b26-b243-5deb0e55c1e8';
const A100 = 'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77';
const GOOD_LINE = `{"uuid":"${H200}","name":"NVIDIA H200","cudaDriverVersion":"12.4","memoryBandwidthGBps":4012.7,"matmulFp32Tflops":51.35,"matmulFp16Tflops":611.2,"durationMs":2874}`;

function config(overrides: Record<string, unknown> = {}) {
  return configSchema.parse({ dataDir: '/nonexistent', gpu: { benchmark: { image: 'registry.example/gpu-bench:1', memoryBytes: '1GiB' }, ...overrides } });
}

describe('the benchmark container', () => {
  it('is exactly this: the GPU by UUID as a lease gets it, no network, read-only, one core, bounded memory and processes, no capabilities', () => {
    expect(benchContainerSpec(H200, config())).toEqual({
      name: `provider-gpu-bench-${H200}`,
      Image: 'registry.example/gpu-bench:1',
      Entrypoint: ['/usr/local/bin/gpu-bench'],
      Cmd: [],
      Env: [`NVIDIA_VISIBLE_DEVICES=${H200}`, 'NVIDIA_DRIVER_CAPABILITIES=compute,utility'],
      Labels: { 'provider.gpu-bench': H200 },
      AttachStdin: false,
      OpenStdin: false,
      Tty: false,
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        DeviceRequests: [{ Driver: 'nvidia', DeviceIDs: [H200], Capabilities: [['gpu']] }],
        NanoCpus: 1_000_000_000,
        Memory: 2 ** 30,
        MemorySwap: 2 ** 30,
        PidsLimit: 64,
        ReadonlyRootfs: true,
        Privileged: false,
        CapDrop: ['ALL'],
        CapAdd: [],
        SecurityOpt: ['no-new-privileges:true'],
        IpcMode: 'private',
        CgroupnsMode: 'private',
        Binds: [],
        Mounts: [],
        RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
        AutoRemove: false,
        LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
      },
    });
  });

  it('asks for a MIG slice by its CDI name in cdi mode, as a lease would', () => {
    const spec = benchContainerSpec(SLICE, config({ mode: 'cdi' }));
    expect(spec.HostConfig.DeviceRequests).toEqual([{ Driver: 'cdi', DeviceIDs: [`nvidia.com/gpu=${SLICE}`], Capabilities: [['cdi']] }]);
    expect(spec.Env).toEqual(['NVIDIA_VISIBLE_DEVICES=void', 'NVIDIA_DRIVER_CAPABILITIES=compute,utility']);
  });

  it('refuses something that is not a GPU UUID before Docker sees it', () => {
    expect(() => benchContainerSpec('all', config())).toThrow(expect.objectContaining({ code: 'ALLOCATION_INVALID' }));
  });
});

describe('the benchmark\'s output', () => {
  it('is its last line of JSON, progress before it ignored', () => {
    expect(parseBenchOutput(`gpu-bench: NVIDIA H200 (${H200}), 142000 MiB free\n${GOOD_LINE}\n`)).toEqual({
      uuid: H200,
      name: 'NVIDIA H200',
      cudaDriverVersion: '12.4',
      memoryBandwidthGBps: 4012.7,
      matmulFp32Tflops: 51.35,
      matmulFp16Tflops: 611.2,
      durationMs: 2874,
    });
  });

  it.each([
    ['garbage', 'Segmentation fault (core dumped)'],
    ['nothing', ''],
    ['a field missing', GOOD_LINE.replace(/,"matmulFp16Tflops":[0-9.]+/, '')],
    ['a negative rate', GOOD_LINE.replace('4012.7', '-1')],
    ['a field it does not know', GOOD_LINE.replace('}', ',"extra":1}')],
    ['an NaN the C printf wrote', GOOD_LINE.replace('51.35', 'nan')],
  ])('refuses %s with GPU_BENCH_BAD_OUTPUT', (_what, text) => {
    expect(() => parseBenchOutput(text)).toThrow(expect.objectContaining({ code: 'GPU_BENCH_BAD_OUTPUT' }));
  });
});

/** A Docker engine in memory: the container prints `stdout` and exits `exitCode`, or never exits. */
function fakeDocker(run: { stdout?: string; stderr?: string; exitCode?: number; hangs?: boolean }) {
  const calls: string[] = [];
  const created: unknown[] = [];
  const frame = (stream: 1 | 2, text: string): Buffer => {
    const body = Buffer.from(text);
    const header = Buffer.alloc(8);
    header[0] = stream;
    header.writeUInt32BE(body.length, 4);
    return Buffer.concat([header, body]);
  };
  const container: BenchContainer = {
    start: () => (calls.push('start'), Promise.resolve()),
    wait: (options) =>
      new Promise((resolve, reject) => {
        calls.push('wait');
        if (!run.hangs) resolve({ StatusCode: run.exitCode ?? 0 });
        options?.abortSignal?.addEventListener('abort', () => reject(new Error('aborted')));
      }),
    logs: ({ stdout, stderr }) => (calls.push(`logs ${stdout ? 'stdout' : ''}${stderr ? 'stderr' : ''}`), Promise.resolve(Buffer.concat([stdout ? frame(1, run.stdout ?? '') : Buffer.alloc(0), stderr ? frame(2, run.stderr ?? '') : Buffer.alloc(0)]))),
    remove: ({ force }) => (calls.push(`remove force=${force}`), Promise.resolve()),
  };
  const docker: BenchDocker = { createContainer: (spec) => (created.push(spec), calls.push('create'), Promise.resolve(container)) };
  return { docker, calls, created };
}

describe('a benchmark run', () => {
  const clock = manualClock(Date.parse('2026-12-04T00:30:00Z'));

  it('creates the spec\'s container, reads the result from stdout and removes the container', async () => {
    const fake = fakeDocker({ stdout: `${GOOD_LINE}\n` });
    const out = await new BenchRunner({ docker: fake.docker, config: config(), clock, log: silentLogger() }).run(H200);
    expect(out).toMatchObject({ uuid: H200, memoryBandwidthGBps: 4012.7, measuredAt: '2026-12-04T00:30:00.000Z' });
    expect(fake.created).toEqual([benchContainerSpec(H200, config())]);
    expect(fake.calls).toEqual(['create', 'start', 'wait', 'logs stdout', 'remove force=true']);
  });

  it('fails with GPU_BENCH_FAILED quoting stderr when the program exits non-zero', async () => {
    const fake = fakeDocker({ stdout: '', stderr: 'gpu-bench: cudaSetDevice(0) failed: no CUDA-capable device is detected\n', exitCode: 2 });
    await expect(new BenchRunner({ docker: fake.docker, config: config(), clock, log: silentLogger() }).run(H200)).rejects.toMatchObject({
      code: 'GPU_BENCH_FAILED',
      message: expect.stringContaining('no CUDA-capable device'),
    });
    expect(fake.calls.at(-1)).toBe('remove force=true');
  });

  it('fails with GPU_BENCH_BAD_OUTPUT on garbage, and with GPU_BENCH_TIMEOUT (container removed) when it never exits', async () => {
    const garbage = fakeDocker({ stdout: 'hello\n' });
    await expect(new BenchRunner({ docker: garbage.docker, config: config(), clock, log: silentLogger() }).run(H200)).rejects.toMatchObject({ code: 'GPU_BENCH_BAD_OUTPUT' });
    const hung = fakeDocker({ hangs: true });
    await expect(new BenchRunner({ docker: hung.docker, config: config(), clock, log: silentLogger(), timeoutMs: 50 }).run(H200)).rejects.toMatchObject({ code: 'GPU_BENCH_TIMEOUT' });
    expect(hung.calls).toEqual(['create', 'start', 'wait', 'remove force=true']);
  });
});

function aGpu(uuid: string, overrides: Partial<AllocatableGpu> = {}): AllocatableGpu {
  return { kind: 'gpu', uuid, gpuUuid: uuid, gpuIndex: 0, migIndex: null, model: 'NVIDIA H200', profile: null, memoryBytes: 141 * 2 ** 30, ...overrides };
}

describe('the signed summary', () => {
  const key = Wallet.createRandom();
  const summary: BenchmarkSummary = {
    schema: 'provider-gpu-benchmark/1',
    provider: key.address,
    results: [
      {
        uuid: H200,
        model: 'NVIDIA H200',
        driverVersion: '550.90.07',
        cudaVersion: '12.4',
        memoryBandwidthGBps: 4012.7,
        matmulFp32Tflops: 51.35,
        matmulFp16Tflops: 611.2,
        durationMs: 2874,
        measuredAt: '2026-12-04T00:30:00.000Z',
        image: 'provider-gpu-bench:1',
      },
    ],
    signedAt: '2026-12-04T00:30:01.000Z',
  };

  it('verifies against the provider\'s address after a round trip through the offer\'s wire, keys in any order', async () => {
    const signed = await signBenchmarks(key, summary);
    const reordered = JSON.parse(JSON.stringify({ signature: signed.signature, summary: { signedAt: summary.signedAt, results: summary.results, provider: summary.provider, schema: summary.schema } }));
    expect(verifyBenchmarks(reordered, key.address)).toEqual(summary);
    const offer = { provider: key.address, benchmarks: signed };
    const decoded = wire.offerWire.shape.benchmarks.parse(JSON.parse(JSON.stringify(z.encode(wire.offerWire.shape.benchmarks, signed))));
    expect(verifyOfferBenchmarks({ ...offer, benchmarks: decoded }, key.address)).toEqual(summary);
    expect(verifyOfferBenchmarks({ provider: key.address, benchmarks: null }, key.address)).toBeNull();
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 'x' }] })).toBe('{"a":[{"c":"x","d":2}],"b":1}');
  });

  it.each([
    ['a raised bandwidth', (s: SignedBenchmarks) => ({ ...s, summary: { ...s.summary, results: [{ ...s.summary.results[0]!, memoryBandwidthGBps: 9999 }] } })],
    ['another GPU\'s UUID', (s: SignedBenchmarks) => ({ ...s, summary: { ...s.summary, results: [{ ...s.summary.results[0]!, uuid: A100 }] } })],
    ['a later date', (s: SignedBenchmarks) => ({ ...s, summary: { ...s.summary, signedAt: '2027-01-01T00:00:00.000Z' } })],
    ['a signature by another key over the same figures', (s: SignedBenchmarks) => ({ ...s, signature: Wallet.createRandom().signMessageSync(canonicalJson(s.summary)) })],
    ['a mangled signature', (s: SignedBenchmarks) => ({ ...s, signature: `0x${'00'.repeat(65)}` })],
    ['a malformed summary', (s: SignedBenchmarks) => ({ ...s, summary: { ...s.summary, results: 'fast' } })],
  ])('refuses %s with BENCHMARK_INVALID', async (_what, tamper) => {
    const signed = await signBenchmarks(key, summary);
    expect(() => verifyBenchmarks(tamper(signed), key.address)).toThrow(expect.objectContaining({ code: 'BENCHMARK_INVALID' }));
  });

  it('refuses a summary signed by its own key but naming another provider: the tenant checks against the address it trusts', async () => {
    const forger = Wallet.createRandom();
    const forged = await signBenchmarks(forger, { ...summary, provider: forger.address });
    expect(() => verifyBenchmarks(forged, key.address)).toThrow(expect.objectContaining({ code: 'BENCHMARK_INVALID' }));
    expect(() => verifyOfferBenchmarks({ provider: forger.address, benchmarks: forged }, key.address)).toThrow(expect.objectContaining({ code: 'BENCHMARK_INVALID' }));
  });
});

describe('benchmarking the offered GPUs', () => {
  const clock = manualClock(Date.parse('2026-12-04T00:30:00Z'));
  const key = Wallet.createRandom();
  const base = { driverVersion: '535.129.03', cudaVersion: '12.2', image: 'provider-gpu-bench:1' };

  it('never measures a GPU a lease holds (nor the other slices of its card), keeps its earlier figures, and signs the rest', async () => {
    const FREE = 'GPU-e109d8d9-923e-7235-0429-96b7fdbcbd30';
    const gpus = [
      aGpu(SLICE, { kind: 'mig', gpuUuid: A100, model: 'NVIDIA A100-SXM4-40GB', profile: '2g.10gb' }),
      aGpu('MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f', { kind: 'mig', gpuUuid: A100, model: 'NVIDIA A100-SXM4-40GB', profile: '3g.20gb' }),
      aGpu(FREE, { model: 'NVIDIA A100-SXM4-40GB' }),
    ];
    const ran: string[] = [];
    const runner = {
      run: (uuid: string) => (ran.push(uuid), Promise.resolve({ ...parseBenchOutput(GOOD_LINE.replace(H200, uuid)), measuredAt: '2026-12-04T00:30:00.000Z' })),
    };
    const earlier = await signBenchmarks(key, {
      schema: 'provider-gpu-benchmark/1',
      provider: key.address,
      results: [{ uuid: SLICE, model: 'NVIDIA A100-SXM4-40GB 2g.10gb', ...base, memoryBandwidthGBps: 300, matmulFp32Tflops: 3, matmulFp16Tflops: 50, durationMs: 2000, measuredAt: '2026-12-01T00:00:00.000Z' }],
      signedAt: '2026-12-01T00:00:01.000Z',
    });
    const outcome = await benchmarkGpus({ gpus, ...base, busy: busyUuids([SLICE], gpus) }, { runner, signer: key, previous: earlier, clock, log: silentLogger() });
    expect(ran).toEqual([FREE]);
    expect(outcome.skipped.map((s) => s.uuid)).toEqual([SLICE, 'MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f']);
    expect(outcome.skipped[0]!.reason).toContain('never benchmarked during a lease');
    expect(verifyBenchmarks(outcome.signed, key.address).results.map((r) => [r.uuid, r.measuredAt])).toEqual([
      [FREE, '2026-12-04T00:30:00.000Z'],
      [SLICE, '2026-12-01T00:00:00.000Z'],
    ]);
  });

  it('records a failure with its code and fix and signs nothing when nothing was measured', async () => {
    const runner = { run: () => Promise.reject(Object.assign(new Error('x'), { code: 'GPU_BENCH_TIMEOUT' })) };
    const outcome = await benchmarkGpus({ gpus: [aGpu(H200)], ...base, busy: new Set() }, { runner, signer: key, previous: null, clock, log: silentLogger() });
    expect(outcome.signed).toBeNull();
    expect(outcome.failed).toEqual([{ uuid: H200, code: 'GPU_BENCH_FAILED', message: expect.any(String), fix: null }]);
  });
});
