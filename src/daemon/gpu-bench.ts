import type { Signer } from 'ethers';
import { BenchRunner, benchmarkGpus, busyUuids, loadBenchmarks, saveBenchmarks, type BenchDocker, type BenchmarkOutcome } from '../benchmark';
import type { CapacityReport } from '../capacity';
import type { ProviderConfig } from '../config';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';

export interface GpuBenchRun {
  config: ProviderConfig;
  report: CapacityReport;
  signer: Signer;
  /** GPU or MIG UUIDs that leases and open quotes hold now. */
  held: Iterable<string>;
  docker: BenchDocker;
  clock: Clock;
  log: Logger;
  signal?: AbortSignal;
}

/**
 * `provider gpu-bench` and the start-up run: each offered GPU no lease holds is measured, the
 * summary signed with the provider key and written to <dataDir>/gpu-benchmarks.json, where the
 * offer and the on-chain metadata read it. Returns what was measured, skipped and why, and failed.
 */
export async function runGpuBench(run: GpuBenchRun): Promise<BenchmarkOutcome & { path: string | null }> {
  const { config, report, signer, clock, log } = run;
  const gpus = report.allocatable.gpus;
  const inventory = report.gpus.ok ? report.gpus : undefined;
  const previous = await loadBenchmarks(config.dataDir, await signer.getAddress());
  const outcome = await benchmarkGpus(
    { gpus, driverVersion: inventory?.driverVersion ?? null, cudaVersion: inventory?.cudaVersion ?? null, busy: busyUuids(run.held, gpus), image: config.gpu.benchmark.image },
    { runner: new BenchRunner({ docker: run.docker, config, clock, log }), signer, previous, clock, log, signal: run.signal },
  );
  const path = outcome.measured.length > 0 && outcome.signed ? await saveBenchmarks(config.dataDir, outcome.signed) : null;
  return { ...outcome, path };
}
