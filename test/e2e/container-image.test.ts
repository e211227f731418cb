import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { freePort } from '../../src/devnet';

// Builds the Dockerfile exactly as a user would, on stand-ins for its official node:20 bases (no
// registry is reachable here), then runs the image against this machine's engine, as its header
// says, on the embedded devnet, until Docker's own HEALTHCHECK calls it healthy.
jest.setTimeout(15 * 60_000);

const ROOT = join(__dirname, '..', '..');
const IMAGE = `provider:e2e-${process.pid}`;
const NAME = `provider-e2e-image-${process.pid}`;

function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8' }).trim();
}

afterAll(() => {
  spawnSync('docker', ['rm', '-f', NAME]);
  // Lease containers the daemon might have started would carry its labels; it starts none here.
  spawnSync('docker', ['rmi', '-f', IMAGE]);
});

it('builds from the Dockerfile and its container answers /healthz and turns healthy', async () => {
  execFileSync('bash', [join(ROOT, 'scripts', 'build-node-base-images.sh')], { stdio: 'inherit' });
  // Host networking for RUN steps: the registries are reached through this machine's proxy.
  execFileSync('docker', ['build', '--network', 'host', '-t', IMAGE, ROOT], { stdio: ['ignore', 'ignore', 'inherit'] });

  const etc = mkdtempSync(join(tmpdir(), 'provider-image-etc-'));
  const data = mkdtempSync(join(tmpdir(), 'provider-image-data-'));
  const apiPort = await freePort('127.0.0.1');
  writeFileSync(
    join(etc, 'provider.yaml'),
    YAML.stringify({ api: { host: '127.0.0.1' }, devnet: { port: await freePort('127.0.0.1') }, log: { format: 'json' } }),
  );
  docker(
    'run', '-d', '--name', NAME,
    '--network', 'host', '--cap-add', 'NET_ADMIN', '--cap-add', 'NET_RAW',
    '-v', '/var/run/docker.sock:/var/run/docker.sock',
    '-v', `${etc}:/etc/provider:ro`, '-v', `${data}:/var/lib/provider`,
    // The port through the environment, as the Dockerfile says, so its HEALTHCHECK follows it.
    '-e', `PROVIDER_API__PORT=${apiPort}`,
    '--health-interval', '2s', '--health-start-period', '5s',
    IMAGE,
  );

  const deadline = Date.now() + 120_000;
  let health = '';
  let answered = false;
  while (Date.now() < deadline && !(answered && health === 'healthy')) {
    await new Promise((r) => setTimeout(r, 1_000));
    const state = JSON.parse(docker('inspect', '-f', '{{json .State}}', NAME)) as { Running: boolean; Health?: { Status: string } };
    if (!state.Running) throw new Error(`the container stopped:\n${docker('logs', '--tail', '40', NAME)}`);
    health = state.Health?.Status ?? '';
    answered = await fetch(`http://127.0.0.1:${apiPort + 1}/healthz`).then((r) => r.ok, () => false);
  }
  if (!answered || health !== 'healthy') throw new Error(`not healthy (${health}):\n${spawnSync('docker', ['logs', '--tail', '40', NAME], { encoding: 'utf8' }).stderr}`);
  expect(health).toBe('healthy');
  expect(docker('inspect', '-f', '{{.Config.User}}', IMAGE)).toBe('');
});
