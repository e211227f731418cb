export { parseBenchOutput, benchOutputSchema } from './output';
export type { BenchOutput } from './output';
export { benchContainerSpec, BENCH_BINARY, BENCH_LABEL } from './spec';
export { BenchRunner } from './runner';
export type { BenchDocker, BenchContainer, BenchRunnerDeps } from './runner';
export { canonicalJson, signBenchmarks, verifyBenchmarks, signedBenchmarksSchema, benchmarkSummarySchema, BENCHMARK_SCHEMA } from './summary';
export type { BenchmarkResult, BenchmarkSummary, SignedBenchmarks } from './summary';
export { benchmarkGpus, busyUuids, loadBenchmarks, saveBenchmarks, BENCHMARKS_FILE } from './benchmark-gpus';
export type { BenchmarkPlan, BenchmarkOutcome } from './benchmark-gpus';
