import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keystoreSettings, loadKeystore } from '../../../src/chain';
import type { Prompter } from '../../../src/cli/prompter';
import { loadConfig } from '../../../src/config';
import { runCli, tempDir } from '../../support/cli-io';

const FAST = ['--scrypt-n', '1024'];

/** Answers questions in order; fails the test on a question it has no answer for. */
function scripted(answers: string[]): () => Prompter {
  return () => ({
    ask: async (_question, fallback) => {
      const answer = answers.shift();
      if (answer === undefined) throw new Error(`unexpected question: ${_question}`);
      return answer === '' ? (fallback ?? '') : answer;
    },
    askSecret: async () => {
      const answer = answers.shift();
      if (answer === undefined) throw new Error('unexpected secret question');
      return answer;
    },
    close: () => undefined,
  });
}

function setup(): { dir: string; config: string; dataDir: string; passwordFile: string } {
  const dir = tempDir('provider-init-');
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, 'correct horse battery\n');
  return { dir, config: join(dir, 'etc', 'provider.yaml'), dataDir: join(dir, 'data'), passwordFile };
}

describe('provider init', () => {
  it('with --yes writes a valid, commented config and a keystore that unlocks to the printed address', async () => {
    const t = setup();
    const run = await runCli(['--config', t.config, '--data-dir', t.dataDir, 'init', '--yes', '--password-file', t.passwordFile, '--region', 'eu-west', '--gpus', '0,GPU-abc', '--cpu-price', '42', ...FAST]);
    expect(run.stderr).toMatch(/provider address {2}0x[0-9a-fA-F]{40}/);
    expect(run.code).toBe(0);
    const address = run.stdout.trim();

    const text = readFileSync(t.config, 'utf8');
    expect(text).toMatch(/^# provider configuration, written by `provider init`/);
    expect(text).toMatch(/# Which GPUs to offer/);
    const { config } = loadConfig({ file: t.config, env: {}, uid: 1000, home: t.dir, cwd: t.dir });
    expect(config).toMatchObject({ dataDir: t.dataDir, region: 'eu-west', gpu: { offer: [0, 'GPU-abc'] }, pricing: { perCpuSecond: '42' } });
    expect(config.network).toBeUndefined();
    expect(config.keystore.passwordFile).toBe(t.passwordFile);

    const wallet = await loadKeystore(keystoreSettings(config.keystore, config.dataDir), {});
    expect(wallet.address).toBe(address);
  });

  it('refuses to overwrite an existing config or keystore without --force, changing nothing', async () => {
    const t = setup();
    const args = ['--config', t.config, '--data-dir', t.dataDir, 'init', '--yes', '--password-file', t.passwordFile, ...FAST];
    expect((await runCli(args)).code).toBe(0);
    const keystore = readFileSync(join(t.dataDir, 'keystore.json'), 'utf8');
    writeFileSync(t.config, 'region: mine\n');

    const again = await runCli(args);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/refusing to overwrite .*provider.yaml and .*keystore.json\n {2}fix: .*--force/);
    expect(readFileSync(t.config, 'utf8')).toBe('region: mine\n');
    expect(readFileSync(join(t.dataDir, 'keystore.json'), 'utf8')).toBe(keystore);

    const forced = await runCli([...args, '--force']);
    expect(forced.code).toBe(0);
    expect(readFileSync(join(t.dataDir, 'keystore.json'), 'utf8')).not.toBe(keystore);
  });

  it('asks on a terminal, password twice, and writes a custom network', async () => {
    const t = setup();
    const answers = [
      t.dataDir, // data directory
      'custom',
      'http://127.0.0.1:8545',
      '8453',
      '0x00000000000000000000000000000000000000aa',
      'home-nl', // region
      'none', // gpus
      '', '', '', '', // prices: defaults
      '9000', // api port
      'a long password', 'a long password',
    ];
    const run = await runCli(['--config', t.config, 'init', ...FAST], { prompter: scripted(answers) });
    expect(run.stderr).toMatch(/network {11}chain 8453 via 127.0.0.1:8545/);
    expect(run.code).toBe(0);
    const { config } = loadConfig({ file: t.config, env: {}, uid: 1000, home: t.dir, cwd: t.dir });
    expect(config).toMatchObject({ region: 'home-nl', gpu: { offer: 'none' }, api: { port: 9000 }, network: { chainId: 8453, rpcUrl: 'http://127.0.0.1:8545' } });
    expect(config.keystore.passwordFile).toBeUndefined();
    expect(run.stderr).toMatch(/set PROVIDER_KEYSTORE_PASSWORD/);
  });

  it('writes nothing when the two passwords differ', async () => {
    const t = setup();
    const answers = [t.dataDir, 'devnet', '', '', '', '', '', '', '', 'first password', 'other password'];
    const run = await runCli(['--config', t.config, 'init', ...FAST], { prompter: scripted(answers) });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/the two passwords differ/);
    expect(existsSync(t.config)).toBe(false);
    expect(existsSync(join(t.dataDir, 'keystore.json'))).toBe(false);
  });

  it('refuses to ask when standard input is not a terminal, and --yes without a password file', async () => {
    const t = setup();
    const noTty = await runCli(['--config', t.config, 'init']);
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toMatch(/standard input is not a terminal\n {2}fix: .*--yes/);
    const noPassword = await runCli(['--config', t.config, '--data-dir', t.dataDir, 'init', '--yes']);
    expect(noPassword.code).toBe(2);
    expect(noPassword.stderr).toMatch(/pass --password-file/);
    expect(existsSync(t.config)).toBe(false);
  });

  it('refuses a custom network without its address, naming the flag', async () => {
    const t = setup();
    const run = await runCli(['--config', t.config, '--data-dir', t.dataDir, 'init', '--yes', '--network', 'custom', '--rpc-url', 'http://127.0.0.1:1', '--chain-id', '5', '--password-file', t.passwordFile]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/Marketplace contract address is required.*\n {2}fix: pass --marketplace/);
  });
});
