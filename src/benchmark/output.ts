import { z } from 'zod';
import { ProviderError } from '../errors';

/**
 * The one line of JSON provisioners/gpu-bench/bench.cu prints on success (its last stdout line;
 * anything before it is progress on stderr, or CUDA's own chatter).
 */
export const benchOutputSchema = z.strictObject({
  /** The device as CUDA saw it: GPU-<uuid> (for a MIG slice, CUDA reports the slice's MIG- UUID). */
  uuid: z.string().regex(/^(GPU|MIG)-[0-9a-fA-F-]{36}$/),
  name: z.string().min(1).max(200),
  /** cudaDriverGetVersion, as "12.4". */
  cudaDriverVersion: z.string().regex(/^\d+\.\d+$/),
  /** Device-to-device copy: bytes read plus bytes written per second, 1e9. */
  memoryBandwidthGBps: z.number().positive().max(100_000),
  /** cuBLAS SGEMM (FP32, no tensor cores), 1e12 flop/s. */
  matmulFp32Tflops: z.number().positive().max(10_000),
  /** cuBLAS GemmEx FP16 in, FP32 accumulate (tensor cores where the card has them). */
  matmulFp16Tflops: z.number().positive().max(10_000),
  /** The measurement's own wall time. */
  durationMs: z.number().int().nonnegative(),
});
export type BenchOutput = z.output<typeof benchOutputSchema>;

/** The bench's result from its output; GPU_BENCH_BAD_OUTPUT when the last line is not it. */
export function parseBenchOutput(text: string): BenchOutput {
  const last = text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean).at(-1) ?? '';
  let json: unknown;
  try {
    json = JSON.parse(last);
  } catch {
    json = undefined;
  }
  const parsed = benchOutputSchema.safeParse(json);
  if (!parsed.success) {
    throw new ProviderError('GPU_BENCH_BAD_OUTPUT', `the GPU benchmark did not print its result line: ${JSON.stringify(last.slice(0, 200))}${json === undefined ? '' : ` (${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message})`}`, {
      input: last.slice(0, 200),
      fix: 'build the benchmark image from provisioners/gpu-bench and point gpu.benchmark.image at it; its output ends with one JSON line',
    });
  }
  return parsed.data;
}
