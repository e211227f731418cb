import type { ContainerCreateOptions } from 'dockerode';
import type { ProviderConfig } from '../config';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { ProbeTimeoutError, withTimeout } from '../util/with-timeout';
import { parseBenchOutput, type BenchOutput } from './output';
import { benchContainerSpec } from './spec';

/** The part of the Docker engine the benchmark uses (dockerode's, narrowed so tests can stand in). */
export interface BenchDocker {
  createContainer(spec: ContainerCreateOptions): Promise<BenchContainer>;
}
export interface BenchContainer {
  start(): Promise<unknown>;
  wait(options?: { abortSignal?: AbortSignal }): Promise<{ StatusCode: number }>;
  logs(options: { stdout: boolean; stderr: boolean; follow?: false }): Promise<Buffer>;
  remove(options: { force: boolean }): Promise<unknown>;
}

export interface BenchRunnerDeps {
  docker: BenchDocker;
  config: Pick<ProviderConfig, 'gpu'>;
  clock: Clock;
  log: Logger;
  /** Overrides gpu.benchmark.timeoutSeconds (tests shorten it). */
  timeoutMs?: number;
}

/**
 * Runs the benchmark container on one GPU: create, start, wait at most
 * gpu.benchmark.timeoutSeconds, read its output, remove it whatever happened (a run past its
 * bound is killed by the removal).
 */
export class BenchRunner {
  constructor(private readonly deps: BenchRunnerDeps) {}

  /** Throws GPU_BENCH_TIMEOUT, GPU_BENCH_FAILED (non-zero exit, engine error) or GPU_BENCH_BAD_OUTPUT. */
  async run(uuid: string, signal?: AbortSignal): Promise<BenchOutput & { measuredAt: string }> {
    const { docker, config } = this.deps;
    const timeoutMs = this.deps.timeoutMs ?? config.gpu.benchmark.timeoutSeconds * 1000;
    const spec = benchContainerSpec(uuid, config);
    let container: BenchContainer | undefined;
    try {
      // A container left by a run that was killed has the same name.
      container = await docker.createContainer(spec).catch(async (err: unknown) => {
        if (!/already in use|Conflict/i.test(String((err as Error).message))) throw err;
        throw new ProviderError('GPU_BENCH_FAILED', `a container named ${spec.name} exists: another benchmark runs on ${uuid}, or one was left behind`, {
          input: uuid,
          fix: `docker rm -f ${spec.name}`,
          cause: err,
        });
      });
      const started = container;
      const exit = await withTimeout(`the GPU benchmark on ${uuid}`, timeoutMs, async (timeout) => {
        await started.start();
        return started.wait({ abortSignal: timeout });
      }, signal);
      // The result is the last line on stdout; progress and CUDA errors go to stderr.
      const output = demux(await started.logs({ stdout: true, stderr: false }));
      if (exit.StatusCode !== 0) {
        const said = demux(await started.logs({ stdout: false, stderr: true }).catch(() => Buffer.alloc(0)));
        throw new ProviderError('GPU_BENCH_FAILED', `the GPU benchmark on ${uuid} exited ${exit.StatusCode}: ${lastLines(said || output)}`, {
          input: uuid,
          fix: 'check GPU passthrough (`provider doctor`) and that gpu.benchmark.image is built from provisioners/gpu-bench for this driver\'s CUDA version',
        });
      }
      return { ...parseBenchOutput(output), measuredAt: new Date(this.deps.clock.now()).toISOString() };
    } catch (err) {
      if (err instanceof ProbeTimeoutError) {
        throw new ProviderError('GPU_BENCH_TIMEOUT', `the GPU benchmark on ${uuid} did not finish within ${timeoutMs / 1000} s; it was stopped`, {
          input: uuid,
          fix: 'a healthy GPU finishes in seconds: check it (`nvidia-smi`, `dmesg` for Xid errors); raise gpu.benchmark.timeoutSeconds only for a slow image start',
          cause: err,
        });
      }
      if (err instanceof ProviderError) throw err;
      throw new ProviderError('GPU_BENCH_FAILED', `the GPU benchmark on ${uuid} could not run: ${(err as Error).message}`, {
        input: uuid,
        fix: `build the image (docker build -t ${config.gpu.benchmark.image} provisioners/gpu-bench) and check GPU passthrough with \`provider doctor\``,
        cause: err,
      });
    } finally {
      await container?.remove({ force: true }).catch((err: unknown) => this.deps.log.warn({ uuid, err: String(err) }, 'could not remove the GPU benchmark container'));
    }
  }
}

/** Docker's log stream without a TTY: 8-byte frame headers before each chunk. */
function demux(buffer: Buffer): string {
  const chunks: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4);
    chunks.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  // Not framed (a fake, or a TTY container): the bytes as they are.
  return (offset === buffer.length && chunks.length > 0 ? Buffer.concat(chunks) : buffer).toString('utf8');
}

function lastLines(text: string): string {
  return text.trim().split(/\r?\n/).slice(-3).join(' / ').slice(0, 300);
}
