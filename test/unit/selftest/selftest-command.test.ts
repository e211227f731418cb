import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatSelftestText } from '../../../src/cli/selftest-command';
import { offDevnetConfig, runCli, tempDir } from '../../support/cli-io';

const KEY = `0x${'5d'.repeat(32)}`;

describe('provider selftest (command line)', () => {
  it('off the devnet, refuses to run without a tenant key file and says what to pass', async () => {
    const { file } = await offDevnetConfig();
    const run = await runCli(['--config', file, 'selftest']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/fix: pass --tenant-key-file <file> with the private key of a tenant account/);
  });

  it('refuses a key file that holds no key, without echoing what it holds', async () => {
    const { file, dir } = await offDevnetConfig();
    const keyFile = join(dir, 'tenant.key');
    writeFileSync(keyFile, 'my secret passphrase\n');
    const run = await runCli(['--config', file, 'selftest', '--tenant-key-file', keyFile]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`${keyFile} does not hold a private key`);
    expect(run.stderr).not.toContain('passphrase');
  });

  it('with a key, goes on to look for the daemon and reports it missing', async () => {
    const { file, dir } = await offDevnetConfig();
    const keyFile = join(dir, 'tenant.key');
    writeFileSync(keyFile, `${KEY.slice(2)}\n`);
    const run = await runCli(['--config', file, '--log-level', 'silent', 'selftest', '--tenant-key-file', keyFile, '--json']);
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout) as { passed: boolean; steps: { name: string; status: string; fix?: string }[] };
    expect(report.passed).toBe(false);
    expect(report.steps[0]).toMatchObject({ name: 'daemon', status: 'fail', fix: expect.stringContaining('start it: provider start') });
  });

  it.each([
    [['--timeout', 'soon'], '--timeout'],
    [['--image', 'Not An Image'], '--image'],
  ])('refuses bad flags %j before doing anything', async (flags, named) => {
    const run = await runCli(['--data-dir', tempDir(), 'selftest', ...flags]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`provider: ${named}: `);
  });
});

describe('formatSelftestText', () => {
  it('prints the doctor\'s table with each step\'s time, the fix under a failure, and the verdict', () => {
    const text = formatSelftestText({
      passed: false,
      ms: 12_345,
      steps: [
        { name: 'daemon', status: 'pass', ms: 31, detail: 'answers' },
        { name: 'cpu.logs', status: 'fail', ms: 16_919, detail: 'no marker', fix: 'look at the log' },
        { name: 'gpu', status: 'skip', ms: 0, detail: 'this provider offers no GPUs' },
      ],
    });
    expect(text.split('\n')).toEqual([
      'PASS  daemon        31 ms  answers',
      'FAIL  cpu.logs   16919 ms  no marker',
      '                fix: look at the log',
      'SKIP  gpu                  this provider offers no GPUs',
      '',
      '1 passed, 0 warnings, 1 failed, 1 skipped',
      'selftest FAILED in 12.3 s',
      '',
    ]);
  });
});
