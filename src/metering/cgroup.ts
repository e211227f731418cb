import { join } from 'node:path';
import { procPath, type KernelFiles } from './proc-files';

/** Where one process's CPU and memory accounting lives. */
export type CgroupLocation =
  | { version: 1; cpuacctDir: string; memoryDir: string }
  | { version: 2; dir: string };

export interface CgroupCounters {
  /** Total CPU time of every task in the group since it was created. */
  cpuNanos: bigint;
  memoryBytes: number;
  /** Highest memory use so far, where the kernel keeps it (v1 always; v2 from 5.19). */
  memoryPeakBytes: number | undefined;
}

/**
 * `/proc/<pid>/cgroup` names the group of every hierarchy: `4:memory:/docker/<id>` (v1) and
 * `0::/system.slice/docker-<id>.scope` (v2). Reading it, rather than guessing from the container
 * id, works for the cgroupfs and systemd drivers alike and for any cgroup parent.
 */
export function parseProcCgroup(text: string): { v1: Map<string, string>; unified: string | undefined } {
  const v1 = new Map<string, string>();
  let unified: string | undefined;
  for (const line of text.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    const [, id, controllers = '', path = '/'] = match;
    if (id === '0' && controllers === '') unified = path;
    else for (const controller of controllers.split(',')) v1.set(controller, path);
  }
  return { v1, unified };
}

export async function locateCgroup(files: KernelFiles, pid: number): Promise<CgroupLocation> {
  const { v1, unified } = parseProcCgroup(await files.read(procPath(files, pid, 'cgroup')));
  const cpuacct = v1.get('cpuacct');
  const memory = v1.get('memory');
  if (cpuacct !== undefined && memory !== undefined) {
    // Debian mounts cpu and cpuacct together as cpu,cpuacct and links cpuacct to it.
    return { version: 1, cpuacctDir: join(files.cgroupRoot, 'cpuacct', cpuacct), memoryDir: join(files.cgroupRoot, 'memory', memory) };
  }
  if (unified !== undefined) return { version: 2, dir: join(files.cgroupRoot, unified) };
  throw new Error(`process ${pid} is in no cpuacct/memory (v1) or unified (v2) cgroup`);
}

export async function readCgroupCounters(files: KernelFiles, location: CgroupLocation): Promise<CgroupCounters> {
  if (location.version === 1) {
    const [usage, memory, peak] = await Promise.all([
      files.read(join(location.cpuacctDir, 'cpuacct.usage')),
      files.read(join(location.memoryDir, 'memory.usage_in_bytes')),
      files.read(join(location.memoryDir, 'memory.max_usage_in_bytes')),
    ]);
    return { cpuNanos: BigInt(usage.trim()), memoryBytes: Number(memory.trim()), memoryPeakBytes: Number(peak.trim()) };
  }
  const [cpuStat, memory, peak] = await Promise.all([
    files.read(join(location.dir, 'cpu.stat')),
    files.read(join(location.dir, 'memory.current')),
    files.read(join(location.dir, 'memory.peak')).catch(() => undefined),
  ]);
  const usec = /^usage_usec (\d+)$/m.exec(cpuStat)?.[1];
  if (usec === undefined) throw new Error(`no usage_usec in ${join(location.dir, 'cpu.stat')}`);
  return {
    cpuNanos: BigInt(usec) * 1000n,
    memoryBytes: Number(memory.trim()),
    memoryPeakBytes: peak === undefined ? undefined : Number(peak.trim()),
  };
}
