import { procPath, type KernelFiles } from './proc-files';

export interface NetCounters {
  rxBytes: bigint;
  txBytes: bigint;
}

/**
 * `/proc/<pid>/net/dev` shows the interfaces of the process's network namespace, so for a
 * container's init process it is exactly the lease's traffic. Loopback is not traffic.
 */
export function parseNetDev(text: string): NetCounters {
  let rxBytes = 0n;
  let txBytes = 0n;
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === 'lo') continue;
    const fields = line.slice(colon + 1).trim().split(/\s+/);
    // Receive: bytes packets errs drop fifo frame compressed multicast; then Transmit: bytes ...
    rxBytes += BigInt(fields[0] ?? '0');
    txBytes += BigInt(fields[8] ?? '0');
  }
  return { rxBytes, txBytes };
}

export async function readNetCounters(files: KernelFiles, pid: number): Promise<NetCounters> {
  return parseNetDev(await files.read(procPath(files, pid, 'net', 'dev')));
}
