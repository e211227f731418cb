import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { ImageService, type PullProgress } from '../../../src/runtime';
import { createLogger } from '../../../src/log';
import { isProviderError } from '../../../src/errors';
import { systemClock } from '../../../src/util/clock';
import { aConfig } from '../../fixtures/runtime';
import { sh, until } from './harness';
import { freePort } from '../../../src/devnet';

jest.setTimeout(120_000);

const USER = 'tenant-7';
const PASSWORD = `pw-${randomBytes(8).toString('hex')}`;
const docker = new Docker({ socketPath: '/var/run/docker.sock' });

let dir: string;
let registry: ChildProcess | undefined;
let address: string;
let image: string;
const logLines: string[] = [];
const logStream = new PassThrough();
logStream.on('data', (chunk: Buffer) => logLines.push(chunk.toString()));
const log = createLogger({ level: 'trace', format: 'json', destination: logStream });

function service(runtime: object = {}): ImageService {
  return new ImageService(docker, aConfig({ runtime }), log, systemClock);
}

async function removeLocal(ref: string): Promise<void> {
  await docker.getImage(ref).remove({ force: true }).catch(() => undefined);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'provider-registry-'));
  const port = await freePort('127.0.0.1');
  address = `127.0.0.1:${port}`;
  const { stdout } = await sh('htpasswd', ['-Bbn', USER, PASSWORD]);
  await writeFile(join(dir, 'htpasswd'), stdout);
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
      `http: { addr: "${address}" }`,
      `auth: { htpasswd: { realm: provider-test, path: ${join(dir, 'htpasswd')} } }`,
      '',
    ].join('\n'),
  );
  registry = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  await until('the registry to answer', async () => {
    const res = await fetch(`http://${address}/v2/`).catch(() => undefined);
    return res?.status === 401 ? true : undefined;
  });

  // An image that exists nowhere else, so the pull really downloads its bytes.
  const rootfs = join(dir, 'rootfs');
  await mkdir(rootfs);
  await writeFile(join(rootfs, 'payload.bin'), randomBytes(3 * 2 ** 20));
  image = `${address}/provider-test/random:${process.pid}`;
  await sh('sh', ['-c', `tar -C ${rootfs} -c . | docker import - ${image}`]);
  const auth = { username: USER, password: PASSWORD, serveraddress: address };
  const stream = await docker.getImage(image).push({ authconfig: auth } as object);
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
    const failed = out?.find((o) => o.error);
    if (err || failed) reject(err ?? new Error(failed?.error));
    else resolve();
  }));
  await removeLocal(image);
});

afterAll(async () => {
  await removeLocal(image);
  registry?.kill('SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('image pulls from a private registry', () => {
  test('fails with a clear error with the wrong credentials', async () => {
    let error: unknown;
    try {
      await service().prepare(image, { registryAuth: { username: USER, password: 'wrong-password' } });
    } catch (err) {
      error = err;
    }
    expect(isProviderError(error, 'REGISTRY_AUTH_FAILED')).toBe(true);
    expect((error as Error).message).toBe(`the registry refused the credentials for ${image}`);
  });

  test('fails without credentials', async () => {
    await expect(service().prepare(image)).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED' });
  });

  test('pulls with the right credentials, reports per-layer progress and records the digest', async () => {
    const progress: PullProgress[] = [];
    const prepared = await service().prepare(image, { registryAuth: { username: USER, password: PASSWORD }, onProgress: (p) => progress.push(p) });
    expect(prepared.pulled).toBe(true);
    expect(prepared.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(prepared.digest).toMatch(new RegExp(`^${address.replace(/\./g, '\\.')}/provider-test/random@sha256:[0-9a-f]{64}$`));
    const downloading = progress.filter((p) => p.status === 'Downloading');
    expect(downloading.length).toBeGreaterThan(0);
    expect(downloading[0]?.layer).toMatch(/^[0-9a-f]{12}$/);
    expect(downloading.every((p) => (p.total ?? 0) > 0 && (p.current ?? 0) <= (p.total ?? 0))).toBe(true);
    expect(progress.some((p) => p.status === 'Pull complete')).toBe(true);
  });

  test('does not hand a cached private image to a tenant without credentials', async () => {
    await expect(service().prepare(image)).rejects.toMatchObject({ code: 'REGISTRY_AUTH_FAILED' });
  });

  test('refuses an image over the size limit and removes it', async () => {
    await removeLocal(image);
    await expect(service({ images: { maxSizeBytes: 2 ** 20 } }).prepare(image, { registryAuth: { username: USER, password: PASSWORD } })).rejects.toMatchObject({
      code: 'IMAGE_TOO_LARGE',
    });
    await expect(docker.getImage(image).inspect()).rejects.toBeDefined();
  });

  test('gives up a pull that outlives its timeout', async () => {
    await removeLocal(image);
    await expect(service().prepare(image, { registryAuth: { username: USER, password: PASSWORD }, timeoutMs: 1 })).rejects.toMatchObject({ code: 'IMAGE_PULL_TIMEOUT' });
  });

  test('stops a pull when the caller aborts', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(service().prepare(image, { registryAuth: { username: USER, password: PASSWORD }, signal: controller.signal })).rejects.toMatchObject({
      code: 'OPERATION_ABORTED',
    });
  });

  test('refuses a denied image without asking the registry', async () => {
    const s = new ImageService(docker, aConfig({ admission: { images: { deny: [`${address}/**`] } } }), log, systemClock);
    await expect(s.prepare(image, { registryAuth: { username: USER, password: PASSWORD } })).rejects.toMatchObject({ code: 'IMAGE_DENIED' });
  });

  test('uses a locally built image without a registry', async () => {
    const prepared = await service().prepare('provider-test/busybox:latest');
    expect(prepared).toMatchObject({ pulled: false, digest: prepared.id });
  });

  test('never writes the registry password to the logs', () => {
    const all = logLines.join('');
    expect(all).toContain('pulling image');
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain(Buffer.from(PASSWORD).toString('base64'));
  });
});
