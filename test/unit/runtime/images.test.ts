import { checkImagePolicy, imageMatches, parseImageRef, ImageService, pickHostPorts, type ImagePolicy } from '../../../src/runtime';
import { manualClock } from '../../../src/util/clock';
import { silentLogger } from '../../../src/log';
import { isProviderError } from '../../../src/errors';
import { aConfig } from '../../fixtures/runtime';
import type Docker from 'dockerode';

describe('image references', () => {
  test.each([
    ['busybox', { registry: 'docker.io', path: 'library/busybox', tag: 'latest', digest: undefined }],
    ['acme/app:1', { registry: 'docker.io', path: 'acme/app', tag: '1', digest: undefined }],
    ['ghcr.io/acme/app', { registry: 'ghcr.io', path: 'acme/app', tag: 'latest', digest: undefined }],
    ['127.0.0.1:5000/x/y:2', { registry: '127.0.0.1:5000', path: 'x/y', tag: '2', digest: undefined }],
    ['localhost/app', { registry: 'localhost', path: 'app', tag: 'latest', digest: undefined }],
    [`ubuntu@sha256:${'a'.repeat(64)}`, { registry: 'docker.io', path: 'library/ubuntu', tag: undefined, digest: `sha256:${'a'.repeat(64)}` }],
    ['index.docker.io/library/xmrig', { registry: 'docker.io', path: 'library/xmrig', tag: 'latest', digest: undefined }],
    ['registry-1.docker.io/acme/app:2', { registry: 'docker.io', path: 'acme/app', tag: '2', digest: undefined }],
    ['GHCR.IO/acme/app', { registry: 'ghcr.io', path: 'acme/app', tag: 'latest', digest: undefined }],
  ])('reads %s as Docker does', (ref, expected) => {
    expect(parseImageRef(ref)).toEqual(expected);
  });

  test.each([
    ['busybox', 'busybox:1.36', true],
    ['busybox', 'docker.io/library/busybox', true],
    ['docker.io/library/*', 'ubuntu:22.04', true],
    ['docker.io/library/*', 'acme/app', false],
    ['ghcr.io/acme/*', 'ghcr.io/acme/app:1', true],
    ['ghcr.io/acme/*', 'ghcr.io/acme/team/app', false],
    ['ghcr.io/acme/**', 'ghcr.io/acme/team/app:2', true],
    ['*/miner*', 'evil/miner-xmr:latest', true],
    ['nvcr.io/nvidia/pytorch:24.*', 'nvcr.io/nvidia/pytorch:24.01-py3', true],
    ['nvcr.io/nvidia/pytorch:24.*', 'nvcr.io/nvidia/pytorch:23.10-py3', false],
  ])('pattern %s matching %s is %s', (pattern, ref, expected) => {
    expect(imageMatches(pattern, parseImageRef(ref))).toBe(expected);
  });
});

describe('image policy', () => {
  const policy = (images: Partial<ImagePolicy>): ImagePolicy => ({ allow: [], deny: [], ...images });

  test('ImageService refuses a denied image before anything reaches the engine', async () => {
    const noDocker = new Proxy({}, { get: () => { throw new Error('docker must not be called'); } }) as unknown as Docker;
    const service = new ImageService(noDocker, aConfig({ admission: { images: { deny: ['*/miner*'] } } }), silentLogger(), manualClock());
    await expect(service.prepare('evil/miner:1')).rejects.toMatchObject({ code: 'IMAGE_DENIED' });
  });

  test('refuses an image outside a non-empty allow list', () => {
    expect(() => checkImagePolicy('ubuntu', policy({ allow: ['ghcr.io/acme/**'] }))).toThrow(/not in this provider's allowed images/);
  });

  test('deny wins over allow', () => {
    try {
      checkImagePolicy('ghcr.io/acme/bad:1', policy({ allow: ['ghcr.io/acme/**'], deny: ['ghcr.io/acme/bad'] }));
      throw new Error('allowed');
    } catch (err) {
      expect(isProviderError(err, 'IMAGE_DENIED')).toBe(true);
    }
  });

  test.each(['index.docker.io/library/xmrig', 'registry-1.docker.io/library/xmrig:latest', 'registry.hub.docker.com/library/xmrig'])(
    'refuses %s, Docker Hub under another name, by a docker.io deny pattern',
    (reference) => {
      expect(() => checkImagePolicy(reference, policy({ deny: ['docker.io/library/xmrig'] }))).toThrow(/matches deny pattern/);
    },
  );

  test.each(['3f57d9401f8d', `sha256:${'b'.repeat(64)}`, 'A'.repeat(12)])('refuses the image id %s, which would bypass the patterns', (reference) => {
    expect(() => checkImagePolicy(reference, policy({}))).toThrow(/is an image id; leases name images by repository/);
  });

  test('allows anything with empty lists', () => {
    expect(checkImagePolicy('anything/at:all', policy({})).path).toBe('anything/at');
  });
});

describe('host ports', () => {
  test('picks the lowest free ports of the range', () => {
    expect(pickHostPorts({ from: 30000, to: 30010 }, [30000, 30002], 3)).toEqual([30001, 30003, 30004]);
  });

  test('fails with PORT_UNAVAILABLE when the range is full', () => {
    expect(() => pickHostPorts({ from: 30000, to: 30001 }, [30000], 2)).toThrow(/only 1 of 2/);
  });
});

describe('image cleanup', () => {
  function fakeDocker(images: { Id: string; Created: number; RepoTags?: string[] }[], usedBy: string[]) {
    const removed: string[] = [];
    const docker = {
      info: async () => ({ DockerRootDir: '/var/lib/docker' }),
      listContainers: async () => usedBy.map((ImageID) => ({ ImageID })),
      listImages: async () => images,
      getImage: (id: string) => ({ remove: async () => { removed.push(id); } }),
    } as unknown as Docker;
    return { docker, removed };
  }

  test('removes unused images least recently used first until the disk is under the threshold', async () => {
    const { docker, removed } = fakeDocker(
      [
        { Id: 'sha256:old', Created: 100 },
        { Id: 'sha256:new', Created: 300 },
        { Id: 'sha256:mid', Created: 200 },
        { Id: 'sha256:busy', Created: 50 },
      ],
      ['sha256:busy'],
    );
    // Each removal frees 6% of the disk.
    const s = new ImageService(docker, aConfig({ runtime: { images: { cleanupAtDiskPercent: 85 } } }), silentLogger(), manualClock(1_000_000), async () => 95 - 6 * removed.length);
    s.touch('sha256:old'); // used just now: goes last
    expect(await s.cleanup()).toEqual(['sha256:mid', 'sha256:new']);
    expect(removed).not.toContain('sha256:busy');
  });

  test('does nothing while the disk is under the threshold', async () => {
    const { docker, removed } = fakeDocker([{ Id: 'sha256:a', Created: 1 }], []);
    const s = new ImageService(docker, aConfig(), silentLogger(), manualClock(0), async () => 10);
    expect(await s.cleanup()).toEqual([]);
    expect(removed).toEqual([]);
  });
});
