import { getAddress, verifyMessage, type Signer } from 'ethers';
import { z } from 'zod';
import { ProviderError } from '../errors';

export const BENCHMARK_SCHEMA = 'provider-gpu-benchmark/1';

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/);

/** One GPU's figures, as measured on this machine. */
export const benchmarkResultSchema = z.strictObject({
  uuid: z.string().min(1),
  model: z.string(),
  /** The host driver, from nvidia-smi. */
  driverVersion: z.string().nullable(),
  /** The CUDA version the driver supports, from nvidia-smi. */
  cudaVersion: z.string().nullable(),
  memoryBandwidthGBps: z.number().positive(),
  matmulFp32Tflops: z.number().positive(),
  matmulFp16Tflops: z.number().positive(),
  durationMs: z.number().int().nonnegative(),
  /** ISO 8601, when the run ended. */
  measuredAt: z.iso.datetime(),
  /** The image that measured it (its reference as configured). */
  image: z.string(),
});
export type BenchmarkResult = z.output<typeof benchmarkResultSchema>;

export const benchmarkSummarySchema = z.strictObject({
  schema: z.literal(BENCHMARK_SCHEMA),
  provider: address,
  results: z.array(benchmarkResultSchema),
  signedAt: z.iso.datetime(),
});
export type BenchmarkSummary = z.output<typeof benchmarkSummarySchema>;

/** What the offer and the on-chain metadata publish as `benchmarks`. */
export const signedBenchmarksSchema = z.strictObject({
  summary: benchmarkSummarySchema,
  /** EIP-191 personal_sign by the provider key over canonicalJson(summary). */
  signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/),
});
export type SignedBenchmarks = z.output<typeof signedBenchmarksSchema>;

/**
 * JSON with object keys sorted at every level and no whitespace: the bytes signed, rebuilt the same
 * way by a verifier in any language from the parsed object, whatever key order it arrived in.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export async function signBenchmarks(signer: Signer, summary: BenchmarkSummary): Promise<SignedBenchmarks> {
  const checked = benchmarkSummarySchema.parse(summary);
  if (getAddress(checked.provider) !== getAddress(await signer.getAddress())) {
    throw new ProviderError('BENCHMARK_INVALID', 'the benchmark summary names another provider than the key signing it', { input: checked.provider });
  }
  return { summary: checked, signature: await signer.signMessage(canonicalJson(checked)) };
}

/**
 * Checks a published benchmark summary: its shape, that it names `provider`, and that the provider
 * key signed exactly it. Returns the summary; throws BENCHMARK_INVALID saying what failed.
 */
export function verifyBenchmarks(published: unknown, provider: string): BenchmarkSummary {
  const parsed = signedBenchmarksSchema.safeParse(published);
  if (!parsed.success) {
    throw new ProviderError('BENCHMARK_INVALID', `the benchmark summary is malformed: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`, { input: 'benchmarks' });
  }
  const { summary, signature } = parsed.data;
  if (getAddress(summary.provider) !== getAddress(provider)) {
    throw new ProviderError('BENCHMARK_INVALID', `the benchmark summary is ${summary.provider}'s, not ${getAddress(provider)}'s`, { input: summary.provider });
  }
  let signer: string;
  try {
    signer = verifyMessage(canonicalJson(summary), signature);
  } catch (err) {
    throw new ProviderError('BENCHMARK_INVALID', 'the benchmark signature cannot be read', { input: 'signature', cause: err });
  }
  if (signer !== getAddress(provider)) {
    throw new ProviderError('BENCHMARK_INVALID', `the benchmark summary was not signed by ${getAddress(provider)} (the figures or the signature were changed)`, { input: 'signature' });
  }
  return summary;
}
