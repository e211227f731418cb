import { ProviderError } from '../errors';
import { ExecError, type Exec } from '../util/exec';
import { parseUtilizationCsv, UTILIZATION_QUERY_ARGS, type GpuUtilizationRow } from './gpu-utilization';
import { parseNvidiaSmiList, type ListedGpu } from './nvidia-smi-list';
import { parseNvidiaSmiXml, toInventory, type XmlInventory } from './nvidia-smi-xml';
import type { GpuHealthReading, GpuInventory } from './types';
import { ProbeTimeoutError, withTimeout } from '../util/with-timeout';

export interface NvidiaSmiOptions {
  exec: Exec;
  /** The binary: an absolute path, or a name looked up on the PATH of `env`. */
  path: string;
  timeoutMs: number;
  /** Environment of the child (its PATH finds a bare `nvidia-smi`); the parent's when unset. */
  env?: NodeJS.ProcessEnv;
}

export interface NvidiaSmiResult {
  inventory: GpuInventory;
  /** Things that did not stop detection but leave gaps (e.g. `-L` failed: MIG UUIDs unknown). */
  warnings: string[];
  /** Each GPU's health reading, by UUID. */
  readings?: Record<string, GpuHealthReading>;
}

/**
 * Reads the GPU inventory from nvidia-smi.
 *
 * The issue named node-nvidia-smi for this. It is replaced by the injected execFile wrapper plus
 * fast-xml-parser because node-nvidia-smi runs `child_process.exec` through a shell with no
 * timeout (a wedged driver hangs the caller for ever), cannot be pointed at another binary (the
 * operator's gpu.nvidiaSmiPath, the tests' fake), and parses with xml2js 0.4 (unmaintained, with
 * a prototype-pollution advisory). It also never runs `-L`, the only place MIG UUIDs appear.
 */
export class NvidiaSmi {
  constructor(private readonly options: NvidiaSmiOptions) {}

  /**
   * Throws ProviderError: NVIDIA_SMI_NOT_FOUND, _FAILED, _TIMEOUT or _BAD_OUTPUT; or the signal's
   * reason when it aborts.
   */
  async query(signal?: AbortSignal): Promise<NvidiaSmiResult> {
    // Both at once: each may take seconds on a large machine while the driver wakes every GPU.
    const [query, list] = await Promise.allSettled([this.run(['-q', '-x'], signal), this.run(['-L'], signal)]);
    if (query.status === 'rejected') throw query.reason;
    const xml = parseNvidiaSmiXml(query.value);
    const warnings: string[] = [];
    let listed: Map<string, ListedGpu> | undefined;
    if (list.status === 'fulfilled') {
      listed = parseNvidiaSmiList(list.value);
    } else if (xml.gpus.some((gpu) => gpu.mig.devices.length > 0)) {
      const reason = list.reason instanceof Error ? list.reason.message : String(list.reason);
      warnings.push(`MIG device UUIDs unknown: \`${this.options.path} -L\` failed (${reason}), so MIG devices cannot be offered`);
    }
    return { inventory: toInventory(xml, listed), warnings, readings: Object.fromEntries(xml.gpus.map((gpu) => [gpu.uuid, gpu.health])) };
  }

  /** `nvidia-smi -q -x` alone, for the health monitor's rounds. Throws as `query` does. */
  async readXml(signal?: AbortSignal): Promise<XmlInventory> {
    return parseNvidiaSmiXml(await this.run(['-q', '-x'], signal));
  }

  /** Every GPU's utilisation and memory in one run (the CSV query). Throws as `query` does. */
  async utilization(signal?: AbortSignal): Promise<GpuUtilizationRow[]> {
    return parseUtilizationCsv(await this.run(UTILIZATION_QUERY_ARGS, signal));
  }

  private async run(args: readonly string[], outer: AbortSignal | undefined): Promise<string> {
    const { exec, path, timeoutMs, env } = this.options;
    try {
      // execFile kills the child at timeoutMs; the outer guard covers a child whose own children
      // keep its pipes open after the kill.
      const result = await withTimeout(
        `${path} ${args.join(' ')}`,
        timeoutMs + 1_000,
        (signal) => exec(path, args, { timeoutMs, signal, env, maxBufferBytes: 64 * 1024 * 1024 }),
        outer,
      );
      return result.stdout;
    } catch (err) {
      if (outer?.aborted) throw outer.reason;
      throw this.describe(err, args);
    }
  }

  private describe(err: unknown, args: readonly string[]): ProviderError {
    const { path, timeoutMs } = this.options;
    const command = `${path} ${args.join(' ')}`;
    if (err instanceof ProbeTimeoutError || (err instanceof ExecError && err.reason === 'timeout')) {
      return new ProviderError('NVIDIA_SMI_TIMEOUT', `${command} gave no answer within ${timeoutMs} ms`, {
        input: path,
        fix: 'the NVIDIA driver may be wedged (check `dmesg` for Xid errors); raise gpu.nvidiaSmiTimeoutMs on a very large machine',
        cause: err,
      });
    }
    if (err instanceof ExecError && err.reason === 'not-found') {
      return new ProviderError('NVIDIA_SMI_NOT_FOUND', `nvidia-smi not found (${path === 'nvidia-smi' ? 'not on PATH' : `no file at ${path}`}): no NVIDIA driver is installed, or it is elsewhere`, {
        input: path,
        fix: 'install the NVIDIA driver to sell GPUs, or set gpu.nvidiaSmiPath (env PROVIDER_NVIDIA_SMI) to its nvidia-smi',
        cause: err,
      });
    }
    if (err instanceof ExecError) {
      // nvidia-smi reports driver trouble on stdout ("NVIDIA-SMI has failed because it couldn't
      // communicate with the NVIDIA driver..."), other tools on stderr: quote whichever speaks.
      const said = firstLine(err.stdout) || firstLine(err.stderr);
      const status = err.reason === 'exit' ? `exited with code ${err.exitCode}` : err.message;
      return new ProviderError('NVIDIA_SMI_FAILED', `${command} ${status}${said ? `: ${said}` : ''}`, {
        input: path,
        fix: /driver/i.test(said)
          ? 'load the NVIDIA kernel module (reboot after a driver upgrade, or run `sudo modprobe nvidia`) and check `nvidia-smi` works'
          : 'run nvidia-smi by hand to see why it fails',
        cause: err,
      });
    }
    return new ProviderError('NVIDIA_SMI_FAILED', `${command} failed: ${err instanceof Error ? err.message : String(err)}`, { input: path, cause: err });
  }
}

/**
 * Whether nvidia-smi's failure says a GPU is gone ("Unable to determine the device handle for
 * GPU0000:3B:00.0: GPU is lost.  Reboot the system to recover this GPU", or a GPU "fallen off the
 * bus"), and which one when it names it (its PCI address). Undefined when the failure is not that.
 */
export function lostGpuOf(err: unknown): { pci: string | null; said: string } | undefined {
  if (!(err instanceof ProviderError) || err.code !== 'NVIDIA_SMI_FAILED') return undefined;
  if (!/gpu is lost|fallen off the bus/i.test(err.message)) return undefined;
  const address = /GPU\s?((?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}(?:\.[0-7])?)/i.exec(err.message);
  return { pci: address ? address[1]! : null, said: err.message };
}

function firstLine(text: string): string {
  return text.split(/\r?\n/).map((line) => line.trim()).find((line) => line !== '') ?? '';
}
