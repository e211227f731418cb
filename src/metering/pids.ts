import { join } from 'node:path';
import { parseProcCgroup } from './cgroup';
import { procPath, type KernelFiles } from './proc-files';

export interface PidsCounters {
  /** Tasks in the group now. */
  current: number | undefined;
  /** `max` of pids.events: forks the pids limit refused (a fork bomb's trace). */
  limitHits: number | undefined;
}

/**
 * The pids cgroup of a process, found through /proc/<pid>/cgroup like the CPU and memory ones, so
 * it works with either cgroup driver and cgroup v1 or v2. Undefined fields where the kernel keeps
 * no such file.
 */
export async function readPidsCounters(files: KernelFiles, pid: number): Promise<PidsCounters> {
  const { v1, unified } = parseProcCgroup(await files.read(procPath(files, pid, 'cgroup')));
  const v1Path = v1.get('pids');
  const dir = v1Path !== undefined ? join(files.cgroupRoot, 'pids', v1Path) : unified !== undefined ? join(files.cgroupRoot, unified) : undefined;
  if (dir === undefined) return { current: undefined, limitHits: undefined };
  const current = Number((await files.read(join(dir, 'pids.current')).catch(() => '')).trim()) || undefined;
  const events = await files.read(join(dir, 'pids.events')).catch(() => '');
  const max = /^max (\d+)$/m.exec(events);
  return { current, limitHits: max ? Number(max[1]) : undefined };
}
