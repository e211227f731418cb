import { ProviderError, describeError, type ErrorCode } from '../errors';

/** The shape of errors docker-modem raises for an engine answer that is not 2xx. */
interface EngineError {
  statusCode?: number;
  json?: { message?: string } | null;
  message?: string;
  reason?: string;
}

export function engineStatus(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null ? (err as EngineError).statusCode : undefined;
}

/** The engine's own message, without docker-modem's "(HTTP code 500) server error - " prefix. */
export function engineMessage(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as EngineError;
    if (e.json && typeof e.json.message === 'string') return e.json.message;
    if (typeof e.message === 'string') return e.message.replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, '');
  }
  return describeError(err);
}

export function isEngineNotFound(err: unknown): boolean {
  return engineStatus(err) === 404;
}

export function isEngineConflict(err: unknown): boolean {
  return engineStatus(err) === 409;
}

/** Not-modified (304): start of a running container, stop of a stopped one. */
export function isEngineNotModified(err: unknown): boolean {
  return engineStatus(err) === 304;
}

export function isAbortError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ((err as Error).name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}

/** The engine cannot reach the socket, or dropped the connection (restarting). */
export function isEngineGone(err: unknown): boolean {
  const code = typeof err === 'object' && err !== null ? (err as { code?: string }).code : undefined;
  return code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT';
}

const NVIDIA_DRIVER_MISSING = /could not select device driver "nvidia"|unknown or invalid runtime name: nvidia|nvidia-container-cli|nvidia-container-runtime/i;
const CDI_MISSING = /could not select device driver "cdi"|unresolvable CDI devices|CDI device injection failed|CDI.*not enabled/i;

/**
 * Turns an engine error met while creating or starting a lease's container into a ProviderError:
 * the GPU cases first (they look like generic start failures otherwise).
 */
export function containerError(err: unknown, fallback: ErrorCode, what: string, input?: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  const message = engineMessage(err);
  if (NVIDIA_DRIVER_MISSING.test(message)) {
    return new ProviderError('NVIDIA_RUNTIME_MISSING', `${what}: the Docker engine has no NVIDIA runtime (${message})`, {
      input,
      cause: err,
      fix: 'install the NVIDIA Container Toolkit, run `nvidia-ctk runtime configure --runtime=docker` and restart dockerd, or stop offering GPUs (gpu.offer: none)',
    });
  }
  if (CDI_MISSING.test(message)) {
    return new ProviderError('CDI_DEVICE_MISSING', `${what}: the engine cannot resolve the CDI GPU devices (${message})`, {
      input,
      cause: err,
      fix: 'generate the CDI spec (`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`) and enable CDI in dockerd (Docker >= 25), or set gpu.mode: runtime',
    });
  }
  if (/error setting rlimit type 7/i.test(message)) {
    return new ProviderError('CONTAINER_START_FAILED', `${what}: the engine cannot raise the open-files limit that high (${message})`, {
      input,
      cause: err,
      fix: "lower runtime.nofileLimit to dockerd's hard open-files limit (see /proc/$(pidof dockerd)/limits)",
    });
  }
  if (/port is already allocated|address already in use/i.test(message)) {
    return new ProviderError('PORT_UNAVAILABLE', `${what}: a host port is already in use (${message})`, { input, cause: err });
  }
  return new ProviderError(fallback, `${what}: ${message}`, { input, cause: err });
}
