import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import type { ExecResult } from './backend';
import { boundedCall, type CallBounds } from './bounded-call';
import { engineMessage, isEngineConflict, isEngineNotFound } from './docker-errors';
import { containerName } from './names';

/** What exec keeps of each stream: a command that floods its output must not fill our memory. */
const MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * Runs `command` in the lease's running container, without a terminal or stdin, and collects its
 * stdout, its stderr (demultiplexed from the engine's one stream) and its exit code. Bounded as a
 * whole: on a timeout we stop listening, but the engine has no call to kill an exec, so the
 * process runs on inside the container until it ends (or the container does).
 */
export async function execInLease(docker: Docker, leaseId: string, command: readonly string[], bounds: CallBounds, clock: Clock): Promise<ExecResult> {
  try {
    return await boundedCall(`exec in lease ${leaseId}`, bounds, async (abortSignal) => {
      const container = docker.getContainer(containerName(leaseId));
      const exec = await container.exec({ Cmd: [...command], AttachStdin: false, AttachStdout: true, AttachStderr: true, Tty: false, abortSignal });
      const stream = await exec.start({ hijack: true, stdin: false, abortSignal });
      const stdout = new OutputCollector();
      const stderr = new OutputCollector();
      docker.modem.demuxStream(stream, stdout, stderr);
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => {
          stream.destroy();
          reject(abortSignal.reason);
        };
        abortSignal.addEventListener('abort', onAbort, { once: true });
        stream.once('error', reject);
        stream.once('end', resolve);
        stream.once('close', resolve);
      });
      // The engine records the exit code a moment after the output ends.
      let info = await exec.inspect({ abortSignal });
      while (info.Running || info.ExitCode === null) {
        await clock.sleep(20, abortSignal);
        info = await exec.inspect({ abortSignal });
      }
      return { exitCode: info.ExitCode, stdout: stdout.text(), stderr: stderr.text() };
    });
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    if (isEngineNotFound(err)) throw new ProviderError('CONTAINER_NOT_FOUND', `lease ${leaseId} has no container`, { input: leaseId });
    if (isEngineConflict(err)) throw new ProviderError('CONTAINER_NOT_RUNNING', `lease ${leaseId} is not running: ${engineMessage(err)}`, { input: leaseId });
    throw new ProviderError('DOCKER_REQUEST_FAILED', `exec in lease ${leaseId} failed: ${engineMessage(err)}`, { input: leaseId, cause: err });
  }
}

class OutputCollector extends Writable {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.size < MAX_OUTPUT_BYTES) {
      const kept = chunk.subarray(0, MAX_OUTPUT_BYTES - this.size);
      this.chunks.push(kept);
      this.size += kept.length;
    }
    done();
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
