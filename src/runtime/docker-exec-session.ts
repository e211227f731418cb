import { PassThrough, type Duplex } from 'node:stream';
import type Docker from 'dockerode';
import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import type { ExecSession, ExecSessionInput, Signalled, TerminalSize } from './backend';
import { boundedCall, type CallBounds } from './bounded-call';
import { engineMessage, isEngineConflict, isEngineNotFound } from './docker-errors';
import { containerName } from './names';

/** Inspects after the output ends before the engine is taken to have lost the exit code. */
const EXIT_POLLS = 250;
const EXIT_POLL_MS = 20;

/**
 * An interactive `docker exec` into the lease's running container: created with stdin attached
 * (and a tty when asked), started hijacked, so the one connection carries the tenant's keystrokes
 * in and the process's output out. With a tty the output is the terminal's raw bytes; without one
 * the engine multiplexes stdout and stderr, and they are split here.
 */
export async function openExecSession(docker: Docker, leaseId: string, input: ExecSessionInput, bounds: CallBounds, clock: Clock): Promise<ExecSession> {
  let exec: Docker.Exec;
  let stream: Duplex;
  try {
    ({ exec, stream } = await boundedCall(`opening a session in lease ${leaseId}`, bounds, async (abortSignal) => {
      const container = docker.getContainer(containerName(leaseId));
      const created = await container.exec({
        Cmd: [...input.command],
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        Tty: input.tty,
        ...(input.tty && input.size ? { ConsoleSize: [input.size.rows, input.size.cols] } : {}),
        ...(input.tty ? { Env: ['TERM=xterm-256color'] } : {}),
        abortSignal,
      } as Docker.ExecCreateOptions);
      // No abortSignal on the start: the signal would end the session's connection when the call's bound ends.
      const started = (await created.start({ hijack: true, stdin: true, Tty: input.tty })) as Duplex;
      // Engines before API 1.42 ignore ConsoleSize: the size is set once the process runs, as `docker exec -t` does.
      // Best effort: a process that has already ended (a quick command) has no terminal left to size.
      if (input.tty && input.size) await created.resize({ h: input.size.rows, w: input.size.cols, abortSignal } as object).catch(() => undefined);
      return { exec: created, stream: started };
    }));
  } catch (err) {
    throw classify(err, leaseId);
  }
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  if (input.tty) {
    stream.pipe(stdout);
    stderr.end();
  } else {
    docker.modem.demuxStream(stream, stdout, stderr);
    stream.once('end', () => {
      stdout.end();
      stderr.end();
    });
  }
  const ended = new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
  const stdin = new PassThrough();
  stdin.on('data', (chunk: Buffer) => {
    if (!stream.destroyed) stream.write(chunk);
  });
  // The hijacked socket's write half closed is the process's end-of-file; its output still comes.
  stdin.once('end', () => {
    if (!stream.destroyed) stream.end();
  });
  const exit = ended.then(() => exitCodeOf(exec, leaseId, clock, bounds.timeoutMs));
  // Nobody may await `exit` (a session closed early); its failure is not an unhandled rejection.
  exit.catch(() => undefined);
  return {
    stdin,
    stdout,
    stderr,
    exit,
    resize: async (size: TerminalSize, options: Signalled = {}) => {
      if (!input.tty) return;
      try {
        await boundedCall(`resizing a terminal in lease ${leaseId}`, { signal: options.signal, timeoutMs: bounds.timeoutMs }, (abortSignal) =>
          exec.resize({ h: size.rows, w: size.cols, abortSignal } as object),
        );
      } catch (err) {
        throw classify(err, leaseId);
      }
    },
    close: () => {
      stream.destroy();
      stdout.end();
      stderr.end();
    },
  };
}

/** The engine records the exit code a moment after the output ends. */
async function exitCodeOf(exec: Docker.Exec, leaseId: string, clock: Clock, timeoutMs: number): Promise<number> {
  for (let poll = 0; poll < EXIT_POLLS; poll += 1) {
    const info = await boundedCall(`reading the exit of a session in lease ${leaseId}`, { timeoutMs }, (abortSignal) => exec.inspect({ abortSignal } as object));
    if (!info.Running && info.ExitCode !== null) return info.ExitCode;
    await clock.sleep(EXIT_POLL_MS);
  }
  throw new ProviderError('BACKEND_TIMEOUT', `the engine kept no exit code for a session in lease ${leaseId}`, { input: leaseId });
}

function classify(err: unknown, leaseId: string): ProviderError {
  if (err instanceof ProviderError) return err;
  if (isEngineNotFound(err)) return new ProviderError('CONTAINER_NOT_FOUND', `lease ${leaseId} has no container`, { input: leaseId });
  if (isEngineConflict(err)) return new ProviderError('CONTAINER_NOT_RUNNING', `lease ${leaseId} is not running: ${engineMessage(err)}`, { input: leaseId });
  return new ProviderError('DOCKER_REQUEST_FAILED', `a session in lease ${leaseId} failed: ${engineMessage(err)}`, { input: leaseId, cause: err });
}

/** The container's address on its lease network, from an inspect; CONTAINER_NOT_RUNNING when it has none. */
export function leaseAddressOf(info: Docker.ContainerInspectInfo, leaseId: string, network: string): string {
  const address = info.State.Running ? info.NetworkSettings.Networks[network]?.IPAddress : undefined;
  if (!address) throw new ProviderError('CONTAINER_NOT_RUNNING', `lease ${leaseId} is not running, so none of its ports can be reached`, { input: leaseId });
  return address;
}
