import { readFile, readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Where the kernel's files are read from. The daemon reads the host's /proc, /sys/fs/cgroup and
 * /sys/class/net; tests point these at fixture trees. A daemon running in a container needs them
 * mounted from the host (and the host PID and network namespaces) to see its leases' counters.
 */
export interface KernelFiles {
  procRoot: string;
  cgroupRoot: string;
  netRoot: string;
  read(path: string): Promise<string>;
  /** Names in a directory; none when it does not exist. */
  list(dir: string): Promise<string[]>;
  /** Removes a directory (a cgroup: rmdir, which the kernel allows once it has no task and no child); one that is not there is fine. */
  removeDir(path: string): Promise<void>;
}

export function hostKernelFiles(procRoot = '/proc', cgroupRoot = '/sys/fs/cgroup', netRoot = '/sys/class/net'): KernelFiles {
  return {
    procRoot,
    cgroupRoot,
    netRoot,
    read: (path) => readFile(path, 'utf8'),
    list: (dir) => readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
      throw err;
    }),
    removeDir: (path) => rmdir(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT' && err.code !== 'ENOTDIR') throw err;
    }),
  };
}

export function procPath(files: KernelFiles, pid: number, ...rest: string[]): string {
  return join(files.procRoot, String(pid), ...rest);
}
