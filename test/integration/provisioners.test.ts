import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/cli-io';

const REPO = join(__dirname, '..', '..');
const UNIT = join(REPO, 'provisioners', 'systemd', 'provider.service');
const INSTALL = join(REPO, 'provisioners', 'install.sh');

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

  it('the NVIDIA set-up script is valid bash', () => {
    const result = spawnSync('bash', ['-n', join(REPO, 'provisioners', 'nvidia', 'setup-container-toolkit.sh')], { encoding: 'utf8' });
    expect(result.status).toBe(0);
  });
});
