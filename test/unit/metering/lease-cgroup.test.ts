import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  LeaseCgroups,
  LeaseCounterReader,
  decodeBaseline,
  encodeBaseline,
  hostKernelFiles,
  leaseCgroupParent,
  leaseCgroupSupport,
  leaseTrafficFromBridge,
  type KernelFiles,
} from '../../../src/metering';
import { tempDir } from '../../support/cli-io';

const LEASE = 'inst1-42';

/** A fake kernel tree; a cgroup directory is removed whole, as rmdir removes one on cgroupfs. */
function kernel(files: Record<string, string>): { root: string; files: KernelFiles } {
  const root = tempDir('provider-lease-cgroup-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  const host = hostKernelFiles(join(root, 'proc'), join(root, 'cg'), join(root, 'net'));
  return { root, files: { ...host, removeDir: async (path) => rmSync(path, { recursive: true, force: true }) } };
}

const v1Parent = (hierarchy: string, id = LEASE): string => `cg/${hierarchy}/provider/lease-${id}`;

describe('leaseCgroupSupport', () => {
  it('gives leases a parent of their own under the cgroupfs driver, on v1 and v2', () => {
    expect(leaseCgroupSupport({ version: 1, driver: 'cgroupfs' })).toEqual({ supported: true });
    expect(leaseCgroupSupport({ version: 2, driver: 'cgroupfs' })).toEqual({ supported: true });
  });

  it('says what is lost under the systemd driver, and the fix', () => {
    const support = leaseCgroupSupport({ version: 2, driver: 'systemd' });
    expect(support).toMatchObject({ supported: false, why: expect.stringMatching(/systemd cgroup driver.*after the last sample/), fix: expect.stringMatching(/native\.cgroupdriver=cgroupfs/) });
  });

  it('names the parent after the lease, under the configured cgroup', () => {
    expect(leaseCgroupParent('provider', LEASE)).toBe(`/provider/lease-${LEASE}`);
  });
});

describe('LeaseCgroups on cgroup v1', () => {
  const tree = {
    [`${v1Parent('cpuacct')}/cpuacct.usage`]: '1500000000\n',
    [`${v1Parent('memory')}/memory.usage_in_bytes`]: '8192\n',
    [`${v1Parent('memory')}/memory.max_usage_in_bytes`]: '65536\n',
    [`${v1Parent('pids')}/pids.current`]: '0\n',
    [`${v1Parent('unified')}/cpu.stat`]: 'usage_usec 1\n',
    [`${v1Parent('cpuacct', 'gone-1')}/cpuacct.usage`]: '5\n',
    [`${v1Parent('memory', 'gone-1')}/memory.usage_in_bytes`]: '0\n',
    [`${v1Parent('cpuacct', 'kept-1')}/cpuacct.usage`]: '7\n',
    'cg/cpuacct/provider/cpuacct.usage': '99\n',
  };

  it('reads the parent\'s CPU from cpuacct and its memory from the memory hierarchy', async () => {
    const { files } = kernel(tree);
    const cgroups = new LeaseCgroups(files, { version: 1, driver: 'cgroupfs' }, 'provider');
    await expect(cgroups.read(LEASE)).resolves.toEqual({ cpuNanos: 1_500_000_000n, memoryBytes: 8192, memoryPeakBytes: 65536 });
    await expect(cgroups.cpuNanos(LEASE)).resolves.toBe(1_500_000_000n);
    await expect(cgroups.cpuNanos('never-started')).resolves.toBe(0n);
  });

  it('removes the parent from every hierarchy, and is fine when it is not there', async () => {
    const { root, files } = kernel(tree);
    const cgroups = new LeaseCgroups(files, { version: 1, driver: 'cgroupfs' }, 'provider');
    await cgroups.remove(LEASE);
    for (const hierarchy of ['cpuacct', 'memory', 'pids', 'unified']) expect(existsSync(join(root, v1Parent(hierarchy)))).toBe(false);
    expect(existsSync(join(root, v1Parent('cpuacct', 'kept-1')))).toBe(true);
    await expect(cgroups.remove(LEASE)).resolves.toBeUndefined();
  });

  it('collects the parents no lease holds, found in any hierarchy', async () => {
    const { root, files } = kernel(tree);
    const cgroups = new LeaseCgroups(files, { version: 1, driver: 'cgroupfs' }, 'provider');
    const { removed, failed } = await cgroups.collect((id) => id === 'kept-1');
    expect(removed.sort()).toEqual(['gone-1', LEASE].sort());
    expect(failed).toEqual([]);
    expect(existsSync(join(root, v1Parent('memory', 'gone-1')))).toBe(false);
    expect(existsSync(join(root, v1Parent('cpuacct', 'kept-1')))).toBe(true);
  });

  it('reports a parent the kernel will not remove (still in use) and goes on with the others', async () => {
    const { files } = kernel(tree);
    const busy: KernelFiles = {
      ...files,
      removeDir: async (path) => {
        if (path.includes(`lease-${LEASE}`)) throw Object.assign(new Error(`EBUSY: resource busy, rmdir '${path}'`), { code: 'EBUSY' });
        return files.removeDir(path);
      },
    };
    const { removed, failed } = await new LeaseCgroups(busy, { version: 1, driver: 'cgroupfs' }, 'provider').collect(() => false);
    expect(removed.sort()).toEqual(['gone-1', 'kept-1']);
    expect(failed).toEqual([{ runtimeId: LEASE, error: expect.stringMatching(/EBUSY/) }]);
  });
});

describe('LeaseCgroups on cgroup v2', () => {
  const parent = `cg/provider/lease-${LEASE}`;
  const tree = {
    [`${parent}/cpu.stat`]: 'usage_usec 2000123\nuser_usec 2000000\nsystem_usec 123\n',
    [`${parent}/memory.current`]: '4096\n',
    [`${parent}/memory.peak`]: '1048576\n',
    'cg/provider/lease-other-7/cpu.stat': 'usage_usec 1\n',
    'cg/provider/cpu.stat': 'usage_usec 9\n',
  };

  it('reads the parent\'s cpu.stat (usage_usec) and memory files under the one tree', async () => {
    const { files } = kernel(tree);
    const cgroups = new LeaseCgroups(files, { version: 2, driver: 'cgroupfs' }, 'provider');
    await expect(cgroups.read(LEASE)).resolves.toEqual({ cpuNanos: 2_000_123_000n, memoryBytes: 4096, memoryPeakBytes: 1_048_576 });
  });

  it('removes and collects parents in the one tree', async () => {
    const { root, files } = kernel(tree);
    const cgroups = new LeaseCgroups(files, { version: 2, driver: 'cgroupfs' }, 'provider');
    expect((await cgroups.collect((id) => id === LEASE)).removed).toEqual(['other-7']);
    expect(existsSync(join(root, 'cg/provider/lease-other-7'))).toBe(false);
    await cgroups.remove(LEASE);
    expect(existsSync(join(root, parent))).toBe(false);
    expect(existsSync(join(root, 'cg/provider/cpu.stat'))).toBe(true);
  });
});

describe('a lease\'s traffic from its bridge', () => {
  const zero = { rxBytes: 0n, rxPackets: 0n, txBytes: 0n };

  it('counts what the bridge received as sent by the lease, with the Ethernet header of each frame', () => {
    expect(leaseTrafficFromBridge({ rxBytes: 5168n, rxPackets: 6n, txBytes: 5778n }, zero)).toEqual({ txBytes: 5252n, rxBytes: 5778n });
  });

  it('counts from the baseline, and from zero when the bridge was recreated', () => {
    const baseline = { rxBytes: 1000n, rxPackets: 10n, txBytes: 2000n };
    expect(leaseTrafficFromBridge({ rxBytes: 1500n, rxPackets: 12n, txBytes: 2600n }, baseline)).toEqual({ txBytes: 528n, rxBytes: 600n });
    expect(leaseTrafficFromBridge({ rxBytes: 100n, rxPackets: 1n, txBytes: 50n }, baseline)).toEqual({ txBytes: 114n, rxBytes: 50n });
  });
});

describe('LeaseCounterReader', () => {
  const tree = {
    [`${v1Parent('cpuacct')}/cpuacct.usage`]: '1500000000\n',
    [`${v1Parent('memory')}/memory.usage_in_bytes`]: '8192\n',
    [`${v1Parent('memory')}/memory.max_usage_in_bytes`]: '8192\n',
    'net/pvl0123/statistics/rx_bytes': '5168\n',
    'net/pvl0123/statistics/rx_packets': '6\n',
    'net/pvl0123/statistics/tx_bytes': '5778\n',
  };

  it('reads CPU, memory and traffic since the baseline; an ended workload holds no memory', async () => {
    const { files } = kernel(tree);
    const reader = new LeaseCounterReader(files, new LeaseCgroups(files, { version: 1, driver: 'cgroupfs' }, 'provider'));
    const baseline = { cpuNanos: 500_000_000n, bridge: { rxBytes: 168n, rxPackets: 1n, txBytes: 778n } };
    await expect(reader.read(LEASE, 'pvl0123', baseline, { ended: false })).resolves.toEqual({ cpuNanos: 1_000_000_000n, memoryBytes: 8192, txBytes: 5070n, rxBytes: 5000n });
    await expect(reader.read(LEASE, 'pvl0123', undefined, { ended: true })).resolves.toMatchObject({ cpuNanos: 1_500_000_000n, memoryBytes: 0 });
  });

  it('takes a baseline of zero where the parent and the bridge do not exist yet', async () => {
    const { files } = kernel({});
    const reader = new LeaseCounterReader(files, new LeaseCgroups(files, { version: 1, driver: 'cgroupfs' }, 'provider'));
    await expect(reader.baseline(LEASE, 'pvl0123')).resolves.toEqual({ cpuNanos: 0n, bridge: { rxBytes: 0n, rxPackets: 0n, txBytes: 0n } });
  });

  it('round-trips a baseline through a container label, and ignores one that does not parse', () => {
    const baseline = { cpuNanos: 12n, bridge: { rxBytes: 3n, rxPackets: 1n, txBytes: 4n } };
    expect(decodeBaseline(encodeBaseline(baseline))).toEqual(baseline);
    expect(decodeBaseline(undefined)).toBeUndefined();
    expect(decodeBaseline('{"cpuNanos":"-1","rxBytes":"0","rxPackets":"0","txBytes":"0"}')).toBeUndefined();
    expect(decodeBaseline('not json')).toBeUndefined();
  });
});
