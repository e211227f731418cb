import { HostProbe, mountHolding, type HostInfoSource } from '../../../src/capacity';
import { GiB } from './fixtures';

const FILESYSTEMS = [
  { fs: '/dev/nvme0n1p2', type: 'ext4', size: 500 * GiB, used: 100 * GiB, available: 375 * GiB, mount: '/' },
  { fs: '/dev/nvme1n1', type: 'xfs', size: 3840 * GiB, used: 40 * GiB, available: 3800 * GiB, mount: '/var/lib' },
  { fs: '/dev/sdb1', type: 'ext4', size: 100 * GiB, used: 0, available: 95 * GiB, mount: '/var/lib/provider-old' },
];

function source(overrides: Partial<HostInfoSource> = {}): HostInfoSource {
  return {
    cpu: async () => ({ manufacturer: 'AMD', brand: 'EPYC', cores: 128, physicalCores: 64, processors: 1 }),
    mem: async () => ({ total: 512 * GiB, available: 480 * GiB }),
    fsSize: async () => FILESYSTEMS,
    cpuModelName: () => 'AMD EPYC 7763 64-Core Processor',
    ...overrides,
  };
}

function probe(overrides: Partial<HostInfoSource> = {}, resolvePath = async (path: string) => path): HostProbe {
  return new HostProbe({ source: source(overrides), timeoutMs: 200, resolvePath });
}

describe('HostProbe', () => {
  it('reads CPU model, physical cores, threads and sockets', async () => {
    expect(await probe().cpu()).toEqual({ model: 'AMD EPYC 7763 64-Core Processor', cores: 64, threads: 128, sockets: 1 });
  });

  it('falls back to systeminformation names when the kernel model string is missing', async () => {
    expect((await probe({ cpuModelName: () => undefined }).cpu()).model).toBe('AMD EPYC');
  });

  it('reads total and available memory', async () => {
    expect(await probe().memory()).toEqual({ totalBytes: 512 * GiB, availableBytes: 480 * GiB });
  });

  it('measures the filesystem of the deepest mount holding the data dir', async () => {
    expect(await probe().disk('/var/lib/provider')).toEqual({
      dataDir: '/var/lib/provider',
      probedPath: '/var/lib/provider',
      mount: '/var/lib',
      filesystem: '/dev/nvme1n1',
      type: 'xfs',
      totalBytes: 3840 * GiB,
      freeBytes: 3800 * GiB,
    });
  });

  it('measures the nearest existing ancestor of a data dir not created yet', async () => {
    const disk = await probe({}, async () => '/var').disk('/var/lib-missing/provider');
    expect([disk.probedPath, disk.mount]).toEqual(['/var', '/']);
  });

  it('reports HOST_PROBE_TIMEOUT when df hangs, naming network mounts as the usual cause', async () => {
    await expect(probe({ fsSize: () => new Promise(() => undefined) }).disk('/var/lib/provider')).rejects.toMatchObject({
      code: 'HOST_PROBE_TIMEOUT',
      fix: expect.stringContaining('NFS'),
    });
  });

  it('reports HOST_PROBE_FAILED when systeminformation fails or reports nonsense', async () => {
    await expect(probe({ mem: async () => Promise.reject(new Error('cannot open /proc/meminfo')) }).memory()).rejects.toMatchObject({
      code: 'HOST_PROBE_FAILED',
      message: 'could not read memory: cannot open /proc/meminfo',
    });
    await expect(probe({ cpu: async () => ({ manufacturer: '', brand: '', cores: 0, physicalCores: 0, processors: 0 }) }).cpu()).rejects.toMatchObject({
      code: 'HOST_PROBE_FAILED',
    });
  });
});

describe('mountHolding', () => {
  it.each([
    ['/var/lib/provider', '/var/lib'],
    ['/var/lib', '/var/lib'],
    ['/var/library', '/'],
    ['/var/lib/provider-old/x', '/var/lib/provider-old'],
    ['/home/op', '/'],
  ])('puts %s on %s', (path, mount) => {
    expect(mountHolding(path, FILESYSTEMS)?.mount).toBe(mount);
  });

  it('finds nothing without a root mount', () => {
    expect(mountHolding('/home', [{ mount: '/var' }])).toBeUndefined();
  });
});
