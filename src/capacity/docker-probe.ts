import { ProviderError } from '../errors';
import { describeSandbox, sandboxSupport, type SandboxSetting } from '../runtime';
import { DEFAULT_CDI_SPEC_DIRS, findNvidiaCdiSpecs, nodeHostFiles, type HostFiles } from './cdi-specs';
import type { DockerInfo, GpuPassthrough } from './types';
import { ProbeTimeoutError, withTimeout } from '../util/with-timeout';

/** The part of dockerode this probe uses; a dockerode instance satisfies it, tests pass a fake. */
export interface DockerEngineApi {
  info(options?: { abortSignal?: AbortSignal }): Promise<unknown>;
  version(options?: { abortSignal?: AbortSignal }): Promise<unknown>;
}

/**
 * Where the NVIDIA Container Toolkit installs its OCI hook. With it present, Docker >= 19.03 serves
 * `--gpus` (DeviceRequests) through its built-in nvidia driver, no `nvidia` runtime needed. dockerd
 * looks it up on its own PATH, which this process cannot see; these are the packages' paths.
 */
export const NVIDIA_HOOK_PATHS = ['/usr/bin/nvidia-container-runtime-hook', '/usr/local/bin/nvidia-container-runtime-hook'] as const;

export interface DockerProbeOptions {
  /** Where the engine is expected, for messages (the dockerode instance already points there). */
  socketPath: string;
  timeoutMs: number;
  files?: HostFiles;
  hookPaths?: readonly string[];
  /** runtime.sandbox, to say which runtime leases will get (default auto). */
  sandbox?: SandboxSetting;
}

/** Asks the engine what it is and whether it can hand a container a GPU. */
export class DockerProbe {
  constructor(
    private readonly docker: DockerEngineApi,
    private readonly options: DockerProbeOptions,
  ) {}

  /** Throws ProviderError: DOCKER_UNREACHABLE, DOCKER_PERMISSION_DENIED or DOCKER_TIMEOUT; or the signal's reason when it aborts. */
  async probe(outer?: AbortSignal): Promise<DockerInfo> {
    let info: Record<string, unknown>;
    let version: Record<string, unknown>;
    try {
      [info, version] = await withTimeout(`docker engine at ${this.options.socketPath}`, this.options.timeoutMs, (signal) =>
        Promise.all([this.docker.info({ abortSignal: signal }), this.docker.version({ abortSignal: signal })]),
        outer,
      ).then(([i, v]) => [record(i), record(v)] as const);
    } catch (err) {
      if (outer?.aborted) throw outer.reason;
      throw this.describe(err);
    }
    const runtimes = Object.keys(record(info.Runtimes)).sort();
    const defaultRuntime = str(info.DefaultRuntime);
    return {
      engineVersion: str(info.ServerVersion) ?? str(version.Version),
      apiVersion: str(version.ApiVersion),
      os: str(info.OperatingSystem),
      osType: str(info.OSType),
      architecture: str(info.Architecture),
      kernelVersion: str(info.KernelVersion),
      cgroupVersion: cgroupVersionOf(info.CgroupVersion),
      cgroupDriver: str(info.CgroupDriver),
      storageDriver: str(info.Driver),
      runtimes,
      defaultRuntime,
      gpuPassthrough: await this.gpuPassthrough(info, runtimes, defaultRuntime),
      sandbox: describeSandbox(this.options.sandbox ?? 'auto', sandboxSupport(info.Runtimes)),
    };
  }

  private async gpuPassthrough(info: Record<string, unknown>, runtimes: string[], defaultRuntime: string | null): Promise<GpuPassthrough> {
    const files = this.options.files ?? nodeHostFiles;
    const nvidiaRuntime = runtimes.includes('nvidia') || defaultRuntime === 'nvidia';
    let nvidiaHook: string | null = null;
    for (const path of this.options.hookPaths ?? NVIDIA_HOOK_PATHS) {
      if (await files.isExecutable(path)) {
        nvidiaHook = path;
        break;
      }
    }
    // Docker >= 25 reports CDISpecDirs; the engine API documents an empty list as "CDI device
    // injection is disabled", and older engines leave it out: either way the engine refuses
    // `--device nvidia.com/gpu=...` whatever specs are on disk.
    const reported = Array.isArray(info.CDISpecDirs) ? info.CDISpecDirs.filter((d): d is string => typeof d === 'string') : undefined;
    const enabledInDocker = reported !== undefined && reported.length > 0;
    const specDirs = enabledInDocker ? reported : [...DEFAULT_CDI_SPEC_DIRS];
    const nvidiaSpecFiles = await findNvidiaCdiSpecs(specDirs, files);
    const cdiUsable = enabledInDocker && nvidiaSpecFiles.length > 0;
    const via: GpuPassthrough['via'] = [];
    if (nvidiaRuntime) via.push('runtime');
    if (nvidiaHook) via.push('hook');
    if (cdiUsable) via.push('cdi');
    const cdi = { enabledInDocker, specDirs, nvidiaSpecFiles };
    if (via.length > 0) return { possible: true, via, reasonCode: null, reason: null, nvidiaRuntime, nvidiaHook, cdi };

    const cdiState = !enabledInDocker
      ? nvidiaSpecFiles.length > 0
        ? `CDI is off in this engine (though nvidia.com/gpu specs exist: ${nvidiaSpecFiles.join(', ')})`
        : 'CDI is off in this engine, with no nvidia.com/gpu spec on disk'
      : `no nvidia.com/gpu CDI spec is in ${specDirs.join(', ')}`;
    return {
      possible: false,
      via,
      reasonCode: 'docker-has-no-nvidia-runtime',
      reason:
        `Docker has no nvidia runtime (runtimes: ${runtimes.join(', ') || 'none'}), no nvidia-container-runtime-hook is installed, and ${cdiState}; ` +
        'install the NVIDIA Container Toolkit and run `nvidia-ctk runtime configure --runtime=docker`, then restart Docker',
      nvidiaRuntime,
      nvidiaHook,
      cdi,
    };
  }

  private describe(err: unknown): ProviderError {
    const { socketPath, timeoutMs } = this.options;
    const code = (err as { code?: unknown } | undefined)?.code;
    if (err instanceof ProbeTimeoutError) {
      return new ProviderError('DOCKER_TIMEOUT', `Docker at ${socketPath} gave no answer within ${timeoutMs} ms`, {
        input: socketPath,
        fix: 'check the engine with `docker info`; restart it if it hangs (`systemctl restart docker`)',
        cause: err,
      });
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return new ProviderError('DOCKER_PERMISSION_DENIED', `permission denied on the Docker socket ${socketPath}`, {
        input: socketPath,
        fix: 'run the provider as root or as a member of the `docker` group (`usermod -aG docker <user>`, then log in again)',
        cause: err,
      });
    }
    if (code === 'ENOENT') {
      return new ProviderError('DOCKER_UNREACHABLE', `no Docker socket at ${socketPath}: the engine is not installed or not running`, {
        input: socketPath,
        fix: 'install and start Docker (`systemctl start docker`), or set docker.socketPath to where its socket is',
        cause: err,
      });
    }
    if (code === 'ECONNREFUSED') {
      return new ProviderError('DOCKER_UNREACHABLE', `nothing listens on the Docker socket ${socketPath}: the engine is not running`, {
        input: socketPath,
        fix: 'start Docker (`systemctl start docker`) and check `docker info`',
        cause: err,
      });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new ProviderError('DOCKER_UNREACHABLE', `Docker at ${socketPath} did not answer: ${message}`, {
      input: socketPath,
      fix: 'check the engine with `docker info` and the socket path in docker.socketPath',
      cause: err,
    });
  }
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** Docker >= 20.10 reports "1" or "2"; older engines nothing. */
function cgroupVersionOf(value: unknown): 1 | 2 | null {
  const version = String(value ?? '');
  return version === '2' ? 2 : version === '1' ? 1 : null;
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}
