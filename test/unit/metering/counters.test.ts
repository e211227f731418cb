import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ContainerCounterReader, hostKernelFiles, parseNetDev, parseProcCgroup } from '../../../src/metering';
import { tempDir } from '../../support/cli-io';

const ID = 'eabdb7900b1f8e85f8887ed2d4bd7a7c35d8d93f392599d2ef4fa6b549e4cf72';

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    5000      50    0    0    0     0          0         0     5000      50    0    0    0     0       0          0
  eth0:  123456     200    0    0    0     0          0         0    65432     100    0    0    0     0       0          0
  eth1:       4       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
`;

function tree(files: Record<string, string>): string {
  const root = tempDir('provider-kernel-');
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('parseProcCgroup', () => {
  it('reads every v1 controller and the unified group of a hybrid host', () => {
    const parsed = parseProcCgroup(`12:cpu,cpuacct:/docker/${ID}\n4:memory:/docker/${ID}\n0::/docker/${ID}\n`);
    expect(parsed.v1.get('cpuacct')).toBe(`/docker/${ID}`);
    expect(parsed.v1.get('cpu')).toBe(`/docker/${ID}`);
    expect(parsed.v1.get('memory')).toBe(`/docker/${ID}`);
    expect(parsed.unified).toBe(`/docker/${ID}`);
  });

  it('reads a pure v2 host under the systemd driver', () => {
    const parsed = parseProcCgroup(`0::/system.slice/docker-${ID}.scope\n`);
    expect(parsed.v1.size).toBe(0);
    expect(parsed.unified).toBe(`/system.slice/docker-${ID}.scope`);
  });
});

describe('parseNetDev', () => {
  it('sums every interface but loopback', () => {
    expect(parseNetDev(NET_DEV)).toEqual({ rxBytes: 123460n, txBytes: 65438n });
  });
});

describe('ContainerCounterReader', () => {
  it('reads CPU, memory and traffic of a container on a cgroup v1 host', async () => {
    const root = tree({
      'proc/42/cgroup': `4:memory:/docker/${ID}\n2:cpuacct:/docker/${ID}\n1:cpu:/docker/${ID}\n0::/docker/${ID}\n`,
      'proc/42/net/dev': NET_DEV,
      [`cg/cpuacct/docker/${ID}/cpuacct.usage`]: '2500000123\n',
      [`cg/memory/docker/${ID}/memory.usage_in_bytes`]: '524288\n',
      [`cg/memory/docker/${ID}/memory.max_usage_in_bytes`]: '4083712\n',
    });
    const reader = new ContainerCounterReader(hostKernelFiles(join(root, 'proc'), join(root, 'cg')));
    await expect(reader.read(42)).resolves.toEqual({
      cpuNanos: 2500000123n,
      memoryBytes: 524288,
      memoryPeakBytes: 4083712,
      rxBytes: 123460n,
      txBytes: 65438n,
    });
  });

  it('reads a container on a cgroup v2 host, with and without memory.peak', async () => {
    const scope = `system.slice/docker-${ID}.scope`;
    const files = {
      'proc/7/cgroup': `0::/${scope}\n`,
      'proc/7/net/dev': NET_DEV,
      [`cg/${scope}/cpu.stat`]: 'usage_usec 1500250\nuser_usec 1000000\nsystem_usec 500250\n',
      [`cg/${scope}/memory.current`]: '1048576\n',
    };
    const rootA = tree(files);
    const readerA = new ContainerCounterReader(hostKernelFiles(join(rootA, 'proc'), join(rootA, 'cg')));
    await expect(readerA.read(7)).resolves.toMatchObject({ cpuNanos: 1500250000n, memoryBytes: 1048576, memoryPeakBytes: undefined });
    const rootB = tree({ ...files, [`cg/${scope}/memory.peak`]: '2097152\n' });
    const readerB = new ContainerCounterReader(hostKernelFiles(join(rootB, 'proc'), join(rootB, 'cg')));
    await expect(readerB.read(7)).resolves.toMatchObject({ memoryPeakBytes: 2097152 });
  });

  it('fails clearly for a process that has gone', async () => {
    const root = tree({ 'proc/.keep': '' });
    const reader = new ContainerCounterReader(hostKernelFiles(join(root, 'proc'), join(root, 'cg')));
    await expect(reader.read(999)).rejects.toThrow(/ENOENT/);
  });
});
