import { parseManifest } from '../../../src/runtime';
import { isProviderError } from '../../../src/errors';

const base = {
  image: 'ghcr.io/acme/trainer:1.2',
  resources: { cpuMillis: 2000, memoryBytes: 2 ** 30, gpus: { count: 1 } },
  maxDurationSeconds: 3600,
};

function refusal(input: unknown): { path: string; message: string }[] {
  try {
    parseManifest(input);
  } catch (err) {
    if (isProviderError(err, 'MANIFEST_INVALID')) return err.input as { path: string; message: string }[];
    throw err;
  }
  throw new Error('manifest was accepted');
}

describe('manifest', () => {
  test('accepts a complete manifest and fills defaults', () => {
    const m = parseManifest({ ...base, ports: [{ containerPort: 8080 }], env: { MODEL: 'x' }, registryAuth: { username: 'u', password: 'p' } });
    expect(m.ports).toEqual([{ containerPort: 8080, protocol: 'tcp' }]);
    expect(m.resources.gpus).toEqual({ count: 1 });
  });

  test('defaults to no GPU', () => {
    expect(parseManifest({ ...base, resources: { cpuMillis: 100, memoryBytes: 2 ** 27 } }).resources.gpus.count).toBe(0);
  });

  test.each([
    ['privileged mode', { privileged: true }, '(manifest)'],
    ['host mounts', { volumes: ['/:/host'] }, '(manifest)'],
    ['host networking', { networkMode: 'host' }, '(manifest)'],
    ['devices', { devices: ['/dev/kmsg'] }, '(manifest)'],
    ['capabilities', { capAdd: ['SYS_ADMIN'] }, '(manifest)'],
    ['a user override', { user: '0' }, '(manifest)'],
  ])('refuses a manifest that asks for %s', (_what, extra, path) => {
    const problems = refusal({ ...base, ...extra });
    expect(problems[0]?.path).toBe(path);
    expect(problems[0]?.message).toMatch(/not allowed/);
  });

  test.each([
    ['an unknown resource key', { resources: { ...base.resources, swapBytes: 1 } }, 'resources'],
    ['an image reference with a space', { image: 'busybox; rm -rf /' }, 'image'],
    ['an upper-case repository', { image: 'Busybox' }, 'image'],
    ['memory under 8 MiB', { resources: { ...base.resources, memoryBytes: 1024 } }, 'resources.memoryBytes'],
    ['a fractional CPU', { resources: { ...base.resources, cpuMillis: 1.5 } }, 'resources.cpuMillis'],
    ['shm larger than memory', { resources: { ...base.resources, shmBytes: 2 ** 31 } }, 'resources.shmBytes'],
    ['an env name with a dash', { env: { 'A-B': '1' } }, 'env.A-B'],
    ['an NVIDIA_ variable', { env: { NVIDIA_VISIBLE_DEVICES: 'all' } }, 'env.NVIDIA_VISIBLE_DEVICES'],
    ['a NUL in an env value', { env: { A: 'x\u0000y' } }, 'env.A'],
    ['a port out of range', { ports: [{ containerPort: 70000 }] }, 'ports.0.containerPort'],
    ['a port protocol other than tcp/udp', { ports: [{ containerPort: 80, protocol: 'sctp' }] }, 'ports.0.protocol'],
    ['a port with a hostPort', { ports: [{ containerPort: 80, hostPort: 80 }] }, 'ports.0'],
    ['the same port twice', { ports: [{ containerPort: 80 }, { containerPort: 80 }] }, 'ports'],
    ['a registryAuth without password', { registryAuth: { username: 'u' } }, 'registryAuth.password'],
    ['no maxDurationSeconds', { maxDurationSeconds: undefined }, 'maxDurationSeconds'],
    ['17 GPUs', { resources: { ...base.resources, gpus: { count: 17 } } }, 'resources.gpus.count'],
  ])('refuses %s and names the field', (_what, patch, path) => {
    expect(refusal({ ...base, ...patch }).map((p) => p.path)).toContain(path);
  });

  test('never puts the manifest (and its registry password) in the error', () => {
    expect.assertions(1);
    try {
      parseManifest({ ...base, privileged: true, registryAuth: { username: 'u', password: 's3cret-pw' } });
    } catch (err) {
      expect(JSON.stringify({ message: (err as Error).message, input: (err as { input: unknown }).input })).not.toContain('s3cret-pw');
    }
  });
});
