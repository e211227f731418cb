import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Signer } from 'ethers';
import type { AllocatableGpu } from '../capacity';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { BenchRunner } from './runner';
import { BENCHMARK_SCHEMA, signBenchmarks, signedBenchmarksSchema, verifyBenchmarks, type BenchmarkResult, type SignedBenchmarks } from './summary';

export const BENCHMARKS_FILE = 'gpu-benchmarks.json';

export interface BenchmarkPlan {
  /** The offered GPUs (and MIG slices). */
  gpus: readonly AllocatableGpu[];
  driverVersion: string | null;
  cudaVersion: string | null;
  /** GPU or MIG UUIDs a lease or an open quote holds now: never measured (the benchmark would steal their time). */
  busy: ReadonlySet<string>;
  image: string;
}

export interface BenchmarkOutcome {
  signed: SignedBenchmarks | null;
  measured: BenchmarkResult[];
  skipped: { uuid: string; reason: string }[];
  failed: { uuid: string; code: string; message: string; fix: string | null }[];
}

/**
 * Measures each offered GPU that no lease holds, one after another (two at once would share the
 * host's PCIe and CPU), then signs the summary: this run's figures plus the last signed figures of
 * GPUs still offered but skipped now, so a busy card keeps its earlier result.
 */
export async function benchmarkGpus(
  plan: BenchmarkPlan,
  deps: { runner: Pick<BenchRunner, 'run'>; signer: Signer; previous: SignedBenchmarks | null; clock: Clock; log: Logger; signal?: AbortSignal },
): Promise<BenchmarkOutcome> {
  const measured: BenchmarkResult[] = [];
  const skipped: BenchmarkOutcome['skipped'] = [];
  const failed: BenchmarkOutcome['failed'] = [];
  for (const gpu of plan.gpus) {
    const holder = isBusy(gpu, plan.busy);
    if (holder) {
      skipped.push({ uuid: gpu.uuid, reason: `a lease or quote holds ${holder}: never benchmarked during a lease` });
      continue;
    }
    deps.signal?.throwIfAborted();
    try {
      const out = await deps.runner.run(gpu.uuid, deps.signal);
      const { measuredAt, memoryBandwidthGBps, matmulFp32Tflops, matmulFp16Tflops, durationMs } = out;
      measured.push({
        uuid: gpu.uuid,
        model: gpu.profile ? `${gpu.model} ${gpu.profile}` : gpu.model,
        driverVersion: plan.driverVersion,
        cudaVersion: plan.cudaVersion,
        memoryBandwidthGBps,
        matmulFp32Tflops,
        matmulFp16Tflops,
        durationMs,
        measuredAt,
        image: plan.image,
      });
      deps.log.info({ uuid: gpu.uuid, memoryBandwidthGBps, matmulFp32Tflops, matmulFp16Tflops }, 'GPU benchmarked');
    } catch (err) {
      if (deps.signal?.aborted) throw err;
      const e = err instanceof ProviderError ? err : undefined;
      failed.push({ uuid: gpu.uuid, code: e?.code ?? 'GPU_BENCH_FAILED', message: describeError(err), fix: e?.fix ?? null });
      deps.log.warn({ uuid: gpu.uuid, err: describeError(err) }, 'GPU benchmark failed');
    }
  }
  const offered = new Set(plan.gpus.map((gpu) => gpu.uuid));
  const fresh = new Set(measured.map((r) => r.uuid));
  const kept = (deps.previous?.summary.results ?? []).filter((r) => offered.has(r.uuid) && !fresh.has(r.uuid));
  const results = [...measured, ...kept].sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
  if (results.length === 0) return { signed: null, measured, skipped, failed };
  const signed = await signBenchmarks(deps.signer, {
    schema: BENCHMARK_SCHEMA,
    provider: await deps.signer.getAddress(),
    results,
    signedAt: new Date(deps.clock.now()).toISOString(),
  });
  return { signed, measured, skipped, failed };
}

/** What holds `gpu`: itself or, through `busyUuids`, another slice of its physical GPU. */
function isBusy(gpu: AllocatableGpu, busy: ReadonlySet<string>): string | undefined {
  if (busy.has(gpu.uuid)) return gpu.uuid;
  if (busy.has(gpu.gpuUuid)) return gpu.gpuUuid;
  return undefined;
}

/**
 * The busy set of a plan from the UUIDs leases and quotes hold: each with its physical GPU, so a
 * held MIG slice keeps the benchmark off its whole card (and a held card off its slices).
 */
export function busyUuids(held: Iterable<string>, offered: readonly AllocatableGpu[]): Set<string> {
  const busy = new Set<string>();
  for (const uuid of held) {
    busy.add(uuid);
    const gpu = offered.find((g) => g.uuid === uuid);
    if (gpu) busy.add(gpu.gpuUuid);
  }
  return busy;
}

/**
 * The signed summary kept in the data dir, when it is `provider`'s and its signature holds; null
 * when none was written, or it is not (a data dir moved to another key, a hand-edited file).
 */
export async function loadBenchmarks(dataDir: string, provider: string): Promise<SignedBenchmarks | null> {
  try {
    const signed = signedBenchmarksSchema.parse(JSON.parse(await readFile(join(dataDir, BENCHMARKS_FILE), 'utf8')));
    verifyBenchmarks(signed, provider);
    return signed;
  } catch {
    return null;
  }
}

export async function saveBenchmarks(dataDir: string, signed: SignedBenchmarks): Promise<string> {
  const path = join(dataDir, BENCHMARKS_FILE);
  await mkdir(dirname(path), { recursive: true });
  // Written whole and renamed: the daemon reading it for an offer never sees half a file.
  await writeFile(`${path}.tmp`, `${JSON.stringify(signed, null, 2)}\n`, { mode: 0o644 });
  await rename(`${path}.tmp`, path);
  return path;
}
