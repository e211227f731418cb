import type { ProviderConfig } from '../config';
import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import { boundedCall, type CallBounds } from './bounded-call';

/** runtime.sandbox: which OCI runtime runs a lease's container. */
export type SandboxSetting = ProviderConfig['runtime']['sandbox'];
/** The two runtimes a lease may run under: gVisor's user-space kernel, or runc's namespaces. */
export type SandboxRuntime = 'runsc' | 'runc';

/** The name Docker must know gVisor by (daemon.json `runtimes`); provisioners/gvisor registers it. */
export const RUNSC = 'runsc';
/** The label that records the runtime a lease's container was created with. */
export const SANDBOX_LABEL = 'provider.sandbox';
export const INSTALL_RUNSC_FIX = 'install gVisor and register it with Docker: sudo provisioners/install.sh --with-gvisor (or provisioners/gvisor/register-runsc.sh)';

/**
 * The host pids cgroup of a gVisor sandbox counts host tasks, not the workload's processes: the
 * sandbox's own threads (about 50 idle, measured with runsc 2022 on its default ptrace platform)
 * and about 8 for each process inside (its stub address space and threads: 20 sleeping processes
 * took 208 tasks, 50 took 446). runtime.pidsLimit stays the workload's process budget; the
 * cgroup is sized to hold it, and still bounds what the lease can take from the host.
 */
export function runscHostTasks(pidsLimit: number): number {
  return pidsLimit * RUNSC_TASKS_PER_PROCESS + RUNSC_OWN_TASKS;
}
const RUNSC_TASKS_PER_PROCESS = 8;
const RUNSC_OWN_TASKS = 64;

/** What the engine offers, read from `docker info` Runtimes. */
export interface SandboxSupport {
  /** Docker has a runtime named runsc. */
  runsc: boolean;
  /**
   * That runsc passes GPUs through (gVisor's nvproxy, asked for with `--nvproxy` in its
   * runtimeArgs). Debian's runsc (2022) has none.
   */
  runscGpu: boolean;
}

export interface SandboxChoice {
  runtime: SandboxRuntime;
  /** Why, as a sentence for the operator (doctor, capacity, logs). */
  why: string;
}

/** Reads docker info's `Runtimes` object: `{ runsc: { path, runtimeArgs } }`. */
export function sandboxSupport(runtimes: unknown): SandboxSupport {
  const entry = isRecord(runtimes) ? runtimes[RUNSC] : undefined;
  if (!isRecord(entry)) return { runsc: false, runscGpu: false };
  const args = Array.isArray(entry.runtimeArgs) ? entry.runtimeArgs.filter((a): a is string => typeof a === 'string') : [];
  return { runsc: true, runscGpu: args.some((a) => a === '--nvproxy' || a === '--nvproxy=true') };
}

/**
 * The runtime a lease with `gpus` GPUs runs under. Pure. auto: gVisor for every lease it can hold
 * (no GPU, or a runsc with nvproxy), runc for the rest; runsc: gVisor or nothing; runc: runc.
 * Throws ProviderError when the setting asks for what the engine lacks.
 */
export function chooseSandbox(setting: SandboxSetting, support: SandboxSupport, gpus: number): SandboxChoice {
  if (setting === 'runc') return { runtime: 'runc', why: 'runtime.sandbox is runc' };
  const gpuLease = gpus > 0;
  if (setting === 'runsc') {
    if (!support.runsc) {
      throw new ProviderError('CONTAINER_CREATE_FAILED', 'runtime.sandbox is runsc but Docker has no runsc runtime', { input: setting, fix: INSTALL_RUNSC_FIX });
    }
    if (gpuLease && !support.runscGpu) throw runscHasNoGpu();
    return { runtime: 'runsc', why: 'runtime.sandbox is runsc' };
  }
  if (!support.runsc) return { runtime: 'runc', why: 'runtime.sandbox is auto and Docker has no runsc runtime' };
  if (gpuLease && !support.runscGpu) return { runtime: 'runc', why: 'this runsc cannot pass a GPU through: no --nvproxy' };
  return { runtime: 'runsc', why: 'runtime.sandbox is auto and Docker has runsc' };
}

/**
 * Admission's check, from the config alone: with runtime.sandbox runsc a GPU lease could only
 * fail at start, so it is refused at quote. A runsc with GPU support (nvproxy) lifts it: the
 * operator then registers it with `--nvproxy` and sets runtime.sandbox to auto.
 */
export function refuseUnsandboxableLease(setting: SandboxSetting, gpus: number): void {
  if (setting === 'runsc' && gpus > 0) {
    throw new ProviderError('POLICY_REFUSED', 'resources.gpus: this provider runs every lease under gVisor (runtime.sandbox: runsc), which cannot pass a GPU through', {
      input: 'resources.gpus',
      fix: 'ask for no GPU, or lease from a provider that offers GPUs (its operator: set runtime.sandbox to auto to run GPU leases under runc)',
    });
  }
}

/** What `provider capacity` and `doctor` say of the sandbox: which runtime each kind of lease gets. */
export interface SandboxReport {
  setting: SandboxSetting;
  /** Docker has a runtime named runsc. */
  runsc: boolean;
  runscGpu: boolean;
  /** The runtime of a lease without GPUs; null when it cannot start (runsc asked, none there). */
  cpuLeases: SandboxRuntime | null;
  /** The runtime of a GPU lease; null when GPU leases are refused. */
  gpuLeases: SandboxRuntime | null;
  /** Why, one sentence per kind of lease. */
  why: string;
  /** Set when strangers' code would run under runc alone, or leases cannot start: what to do. */
  warning: string | null;
  fix: string | null;
}

/** The sandbox as the operator reads it: pure, from the setting and what the engine offers. */
export function describeSandbox(setting: SandboxSetting, support: SandboxSupport): SandboxReport {
  const pick = (gpus: number): SandboxChoice | ProviderError => {
    try {
      return chooseSandbox(setting, support, gpus);
    } catch (err) {
      if (err instanceof ProviderError) return err;
      throw err;
    }
  };
  const cpu = pick(0);
  const gpu = pick(1);
  const cpuLeases = cpu instanceof ProviderError ? null : cpu.runtime;
  const gpuLeases = gpu instanceof ProviderError ? null : gpu.runtime;
  const why = [
    cpu instanceof ProviderError ? `leases cannot start: ${cpu.message}` : `leases without GPUs run under ${cpu.runtime} (${cpu.why})`,
    gpu instanceof ProviderError ? `GPU leases are refused: ${gpu.message}` : gpu.runtime === cpuLeases ? null : `GPU leases run under ${gpu.runtime} (${gpu.why})`,
  ]
    .filter((part): part is string => part !== null)
    .join('; ');
  let warning: string | null = null;
  let fix: string | null = null;
  if (cpu instanceof ProviderError) {
    warning = cpu.message;
    fix = cpu.fix ?? null;
  } else if (cpu.runtime === 'runc' && setting === 'auto') {
    warning = 'only runc is available: strangers\' code shares the host kernel, isolated by namespaces and seccomp alone';
    fix = INSTALL_RUNSC_FIX;
  }
  return { setting, runsc: support.runsc, runscGpu: support.runscGpu, cpuLeases, gpuLeases, why, warning, fix };
}

function runscHasNoGpu(): ProviderError {
  return new ProviderError('CONTAINER_CREATE_FAILED', 'runtime.sandbox is runsc but this runsc cannot pass a GPU through (no --nvproxy)', {
    input: 'resources.gpus',
    fix: 'set runtime.sandbox to auto (GPU leases then run under runc), or register a runsc with GPU support (--nvproxy)',
  });
}

/** Caches what the engine offers for this long: an operator who registers runsc is seen within it. */
const SUPPORT_TTL_MS = 60_000;

/** The part of dockerode the chooser asks; a dockerode instance satisfies it. */
export interface RuntimesSource {
  info(options?: { abortSignal?: AbortSignal }): Promise<unknown>;
}

/**
 * Picks each lease's runtime against what the engine offers now (`docker info`, asked at most
 * once a minute): the chooser of LeaseRuntime.start.
 */
export class Sandbox {
  private cached: { support: SandboxSupport; at: number } | undefined;

  constructor(
    private readonly docker: RuntimesSource,
    private readonly setting: SandboxSetting,
    private readonly clock: Clock,
  ) {}

  async choose(gpus: number, bounds: CallBounds): Promise<SandboxChoice> {
    // runc asks nothing of the engine.
    if (this.setting === 'runc') return chooseSandbox('runc', { runsc: false, runscGpu: false }, gpus);
    return chooseSandbox(this.setting, await this.support(bounds), gpus);
  }

  private async support(bounds: CallBounds): Promise<SandboxSupport> {
    const now = this.clock.now();
    if (this.cached && now - this.cached.at < SUPPORT_TTL_MS) return this.cached.support;
    const info = (await boundedCall('docker info (runtimes)', bounds, (signal) => this.docker.info({ abortSignal: signal }))) as { Runtimes?: unknown };
    const support = sandboxSupport(info.Runtimes);
    this.cached = { support, at: now };
    return support;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
