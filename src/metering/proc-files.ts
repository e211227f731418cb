import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Where the kernel's files are read from. The daemon reads the host's /proc and /sys/fs/cgroup;
 * tests point these at fixture trees. A daemon running in a container needs both mounted from
 * the host (and the host PID namespace) to see its leases' counters.
 */
export interface KernelFiles {
  procRoot: string;
  cgroupRoot: string;
  read(path: string): Promise<string>;
}

export function hostKernelFiles(procRoot = '/proc', cgroupRoot = '/sys/fs/cgroup'): KernelFiles {
  return { procRoot, cgroupRoot, read: (path) => readFile(path, 'utf8') };
}

export function procPath(files: KernelFiles, pid: number, ...rest: string[]): string {
  return join(files.procRoot, String(pid), ...rest);
}
