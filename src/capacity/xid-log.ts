/** One `NVRM: Xid` line of the kernel log: the driver's report of a GPU error. */
export interface XidEvent {
  /** Seconds since boot, as the kernel stamps the line: what "since the last read" is counted by. */
  at: number;
  /** The GPU's PCI address, normalised (see pciKey). */
  pci: string;
  xid: number;
  /** The line after the Xid number: what the driver says happened. */
  text: string;
}

const XID_LINE = /\[\s*(\d+(?:\.\d+)?)\]\s*NVRM: Xid \(PCI:([0-9a-f]+):([0-9a-f]{2}):([0-9a-f]{2})(?:\.\d)?\):\s*(\d+),?\s*(.*)$/i;

/**
 * The Xid lines of `dmesg` output, for example
 * `[ 5123.456789] NVRM: Xid (PCI:0000:3b:00): 79, pid=2345, name=python3, GPU has fallen off the bus.`
 * nvidia-smi -q -x has no Xid counter (only NVML's event API and the kernel log report them).
 */
export function parseXidLines(output: string): XidEvent[] {
  const events: XidEvent[] = [];
  for (const line of output.split(/\r?\n/)) {
    const match = XID_LINE.exec(line);
    if (!match) continue;
    events.push({ at: Number(match[1]), pci: pciKey(`${match[2]}:${match[3]}:${match[4]}`), xid: Number(match[5]), text: match[6]!.trim() });
  }
  return events;
}

/**
 * A PCI address as one comparable string: the kernel writes `0000:3b:00`, nvidia-smi
 * `00000000:3B:00.0` (an eight-digit domain, a function). Null when it is not an address.
 */
export function pciKey(address: string): string {
  const match = /^(?:([0-9a-f]+):)?([0-9a-f]{2}):([0-9a-f]{2})(?:\.[0-7])?$/i.exec(address.trim());
  if (!match) return address.trim().toLowerCase();
  return `${parseInt(match[1] ?? '0', 16)}:${match[2]!.toLowerCase()}:${match[3]!.toLowerCase()}`;
}
