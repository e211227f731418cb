import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { tempDir } from '../support/cli-io';

const REPO = join(__dirname, '..', '..');
const UNIT = join(REPO, 'provisioners', 'systemd', 'provider.service');
const INSTALL = join(REPO, 'provisioners', 'install.sh');
const REGISTER = join(REPO, 'provisioners', 'gvisor', 'register-runsc.sh');

describe('provisioners', () => {
  it('the systemd unit passes systemd-analyze verify with no warning', () => {
    // Only ExecStart's path changes: it must name an executable that exists on this machine.
    const dir = tempDir('provider-unit-');
    const unit = join(dir, 'provider.service');
    writeFileSync(unit, readFileSync(UNIT, 'utf8').replaceAll('/usr/local/bin/provider', join(REPO, 'bin', 'provider')));
    const result = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
    expect(`${result.stdout}${result.stderr}`).toBe('');
    expect(result.status).toBe(0);
  });

  it('install.sh is idempotent and never overwrites the operator\'s config', () => {
    const root = tempDir('provider-root-');
    const first = execFileSync('bash', [INSTALL, '--root', root, '--no-build'], { encoding: 'utf8' });
    expect(first).toMatch(/installed .*etc\/systemd\/system\/provider.service/);
    expect(first).toMatch(/== installed/);
    expect(readFileSync(join(root, 'etc/systemd/system/provider.service'), 'utf8')).toBe(readFileSync(UNIT, 'utf8'));
    expect(readlinkSync(join(root, 'usr/local/bin/provider'))).toBe('/opt/provider/bin/provider');
    expect(readFileSync(join(root, 'opt/provider/bin/provider'), 'utf8')).toMatch(/dist\/cli\/main/);

    const config = join(root, 'etc/provider/provider.yaml');
    writeFileSync(config, 'region: edited-by-operator\n');
    const second = execFileSync('bash', [INSTALL, '--root', root, '--no-build'], { encoding: 'utf8' });
    expect(second).toMatch(/== nothing changed: already installed/);
    expect(readFileSync(config, 'utf8')).toBe('region: edited-by-operator\n');
  });

  it('install.sh refuses an unknown option with exit 2', () => {
    const result = spawnSync('bash', [INSTALL, '--frobnicate'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/unknown option --frobnicate/);
  });

  it('install.sh --with-gvisor registers runsc into an existing daemon.json without losing a key, once', () => {
    const root = tempDir('provider-root-');
    const daemonJson = join(root, 'etc/docker/daemon.json');
    mkdirSync(dirname(daemonJson), { recursive: true });
    const operator = { 'log-driver': 'journald', runtimes: { nvidia: { path: 'nvidia-container-runtime', runtimeArgs: [] } }, 'live-restore': true };
    writeFileSync(daemonJson, JSON.stringify(operator), { mode: 0o600 });
    const first = execFileSync('bash', [INSTALL, '--root', root, '--no-build', '--with-gvisor'], { encoding: 'utf8' });
    expect(first).toMatch(/registered runsc \(\S*runsc --network=host\) in .*daemon.json/);
    const merged = JSON.parse(readFileSync(daemonJson, 'utf8')) as typeof operator & { runtimes: Record<string, { path: string; runtimeArgs: string[] }> };
    expect(merged).toMatchObject(operator);
    expect(merged.runtimes.runsc).toEqual({ path: expect.stringMatching(/runsc$/), runtimeArgs: ['--network=host'] });
    expect(statSync(daemonJson).mode & 0o777).toBe(0o600);
    const second = execFileSync('bash', [INSTALL, '--root', root, '--no-build', '--with-gvisor'], { encoding: 'utf8' });
    expect(second).toMatch(/runsc already registered/);
    expect(second).toMatch(/== nothing changed: already installed/);
  });

  it('register-runsc.sh keeps the operator\'s runsc arguments, and leaves a daemon.json that is not JSON untouched', () => {
    const dir = tempDir('provider-daemon-json-');
    const daemonJson = join(dir, 'daemon.json');
    const args = ['--daemon-json', daemonJson, '--runsc', '/bin/true', '--no-install', '--no-reload'];
    writeFileSync(daemonJson, JSON.stringify({ runtimes: { runsc: { path: '/opt/runsc', runtimeArgs: ['--platform=kvm', '--network=sandbox'] } } }));
    execFileSync('bash', [REGISTER, ...args], { encoding: 'utf8' });
    expect(JSON.parse(readFileSync(daemonJson, 'utf8'))).toEqual({ runtimes: { runsc: { path: '/bin/true', runtimeArgs: ['--network=host', '--platform=kvm'] } } });

    writeFileSync(daemonJson, '{"runtimes": {');
    const broken = spawnSync('bash', [REGISTER, ...args], { encoding: 'utf8' });
    expect(broken.status).toBe(1);
    expect(broken.stderr).toMatch(/is not valid JSON .*left untouched/);
    expect(readFileSync(daemonJson, 'utf8')).toBe('{"runtimes": {');
  });

  it('the NVIDIA set-up script is valid bash', () => {
    const result = spawnSync('bash', ['-n', join(REPO, 'provisioners', 'nvidia', 'setup-container-toolkit.sh')], { encoding: 'utf8' });
    expect(result.status).toBe(0);
  });
});
