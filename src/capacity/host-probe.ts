import { cpus } from 'node:os';
import { realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import si from 'systeminformation';
import { ProviderError } from '../errors';
import type { CpuInfo, DiskInfo, MemoryInfo } from './types';
import { ProbeTimeoutError, withTimeout } from '../util/with-timeout';

/**
 * The few systeminformation calls the host probe makes, behind an interface so unit tests can
 * hand it a fake machine. Field names are systeminformation's.
 */
export interface HostInfoSource {
  cpu(): Promise<{ manufacturer: string; brand: string; cores: number; physicalCores: number; processors: number }>;
  mem(): Promise<{ total: number; available: number }>;
  fsSize(): Promise<{ fs: string; type: string; size: number; used: number; available: number; mount: string }[]>;
  /** The kernel's model string (`model name` in /proc/cpuinfo), which is more exact than si's brand. */
  cpuModelName?(): string | undefined;
}

export function systemInformationSource(cpuModelName?: () => string | undefined): HostInfoSource {
  return {
    cpu: () => si.cpu(),
    mem: () => si.mem(),
    fsSize: () => si.fsSize(),
    cpuModelName: cpuModelName ?? (() => cpus()[0]?.model),
  };
}

/** Resolves the directory to measure: the path itself or its nearest existing ancestor, symlinks resolved. */
export type ExistingPathResolver = (path: string) => Promise<string>;

export const resolveExistingPath: ExistingPathResolver = async (path) => {
  // The data dir is created on first start; before that, its future filesystem is its parent's.
  let current = path;
  for (;;) {
    try {
      await stat(current);
      return await realpath(current);
    } catch {
      const parent = dirname(current);
      if (parent === current) return current;
      current = parent;
    }
  }
};

export interface HostProbeOptions {
  source: HostInfoSource;
  timeoutMs: number;
  resolvePath?: ExistingPathResolver;
}

/** CPU, memory and the disk under the data dir. Each method throws HOST_PROBE_FAILED or HOST_PROBE_TIMEOUT. */
export class HostProbe {
  constructor(private readonly options: HostProbeOptions) {}

  async cpu(signal?: AbortSignal): Promise<CpuInfo> {
    const cpu = await this.ask('CPU', () => this.options.source.cpu(), signal);
    const threads = cpu.cores;
    if (!Number.isInteger(threads) || threads <= 0) throw failed('CPU', `no CPU count reported (got ${String(threads)})`);
    const model = this.options.source.cpuModelName?.()?.trim() || [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ') || 'unknown CPU';
    return {
      model,
      cores: cpu.physicalCores > 0 ? cpu.physicalCores : threads,
      threads,
      sockets: cpu.processors > 0 ? cpu.processors : 1,
    };
  }

  async memory(signal?: AbortSignal): Promise<MemoryInfo> {
    const mem = await this.ask('memory', () => this.options.source.mem(), signal);
    if (!(mem.total > 0)) throw failed('memory', `no memory size reported (got ${String(mem.total)})`);
    return { totalBytes: mem.total, availableBytes: mem.available };
  }

  async disk(dataDir: string, signal?: AbortSignal): Promise<DiskInfo> {
    const probedPath = await this.ask('data dir', () => (this.options.resolvePath ?? resolveExistingPath)(dataDir), signal);
    const filesystems = await this.ask('disk', () => this.options.source.fsSize(), signal);
    const holder = mountHolding(probedPath, filesystems);
    if (!holder) {
      throw failed('disk', `no mounted filesystem holds ${probedPath} (mounts seen: ${filesystems.map((f) => f.mount).join(', ') || 'none'})`);
    }
    return {
      dataDir,
      probedPath,
      mount: holder.mount,
      filesystem: holder.fs,
      type: holder.type,
      totalBytes: holder.size,
      freeBytes: holder.available,
    };
  }

  private async ask<T>(what: string, work: () => Promise<T>, outer: AbortSignal | undefined): Promise<T> {
    try {
      return await withTimeout(`reading ${what}`, this.options.timeoutMs, work, outer);
    } catch (err) {
      if (outer?.aborted) throw outer.reason;
      if (err instanceof ProbeTimeoutError) {
        throw new ProviderError('HOST_PROBE_TIMEOUT', `reading ${what} took longer than ${this.options.timeoutMs} ms`, {
          fix: what === 'disk' ? 'a hung network mount (NFS, CIFS) stalls `df`: unmount it or fix the server' : 'check the host is not overloaded',
          cause: err,
        });
      }
      if (err instanceof ProviderError) throw err;
      throw failed(what, err instanceof Error ? err.message : String(err), err);
    }
  }
}

/** The mount with the longest path that contains `path`. */
export function mountHolding<T extends { mount: string }>(path: string, filesystems: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const candidate of filesystems) {
    const mount = candidate.mount;
    const contains = path === mount || mount === '/' || path.startsWith(mount.endsWith('/') ? mount : `${mount}/`);
    if (contains && (!best || mount.length > best.mount.length)) best = candidate;
  }
  return best;
}

function failed(what: string, detail: string, cause?: unknown): ProviderError {
  return new ProviderError('HOST_PROBE_FAILED', `could not read ${what}: ${detail}`, { cause });
}
