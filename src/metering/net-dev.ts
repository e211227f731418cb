import { join } from 'node:path';
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

/** A Linux bridge's own counters (/sys/class/net/<bridge>/statistics), as the host sees them. */
export interface BridgeCounters {
  /** Frames the bridge passed up to the host: what its ports sent out of the lease. */
  rxBytes: bigint;
  rxPackets: bigint;
  /** Frames the host sent down the bridge: what the lease received. */
  txBytes: bigint;
}

/**
 * Ethernet header bytes the bridge leaves out of rx_bytes: it counts a frame it passes up after
 * the header is pulled, while the lease's own interface (and /proc/<pid>/net/dev) counts it whole.
 */
const ETHERNET_HEADER_BYTES = 14n;

export async function readBridgeCounters(files: KernelFiles, bridge: string): Promise<BridgeCounters> {
  const dir = join(files.netRoot, bridge, 'statistics');
  const [rxBytes, rxPackets, txBytes] = await Promise.all(['rx_bytes', 'rx_packets', 'tx_bytes'].map(async (name) => BigInt((await files.read(join(dir, name))).trim())));
  return { rxBytes: rxBytes as bigint, rxPackets: rxPackets as bigint, txBytes: txBytes as bigint };
}

/**
 * A lease's traffic from its bridge's counters since `baseline`. The bridge is the lease's own (one
 * container, inter-container traffic off), so everything the lease sends or receives through the
 * host crosses it; and it outlives the container until the network is removed, so traffic after
 * the last sample is still counted once the workload has exited. Directions are the lease's: what
 * the bridge received is what the lease sent. Measured here against the container's own eth0 the
 * sent bytes match exactly; received bytes leave out the host's own link-local chatter on the
 * veth (IPv6 neighbour discovery), which is not the lease's traffic.
 */
export function leaseTrafficFromBridge(now: BridgeCounters, baseline: BridgeCounters): NetCounters {
  const since = (a: bigint, b: bigint): bigint => (a >= b ? a - b : a);
  return {
    rxBytes: since(now.txBytes, baseline.txBytes),
    txBytes: since(now.rxBytes, baseline.rxBytes) + since(now.rxPackets, baseline.rxPackets) * ETHERNET_HEADER_BYTES,
  };
}
