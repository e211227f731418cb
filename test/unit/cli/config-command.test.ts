import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { runCli, tempDir } from '../../support/cli-io';

function configFile(yaml: string): string {
  const file = join(tempDir(), 'provider.yaml');
  writeFileSync(file, yaml);
  return file;
}

describe('provider config', () => {
  it('print shows the merged result: file, then environment, then flags', async () => {
    const file = configFile('region: eu-west\napi:\n  port: 9001\n');
    const run = await runCli(['--config', file, '--set', 'api.host=127.0.0.1', '--log-level', 'warn', 'config', 'print', '--json'], {
      env: { PROVIDER_API__PORT: '9002', PATH: process.env.PATH },
    });
    expect(run.code).toBe(0);
    const shown = JSON.parse(run.stdout) as Record<string, Record<string, unknown>>;
    expect(shown.region).toBe('eu-west');
    expect(shown.api).toMatchObject({ port: 9002, host: '127.0.0.1' });
    expect(shown.log).toMatchObject({ level: 'warn' });
  });

  it('print redacts credentials in RPC URLs but keeps the host', async () => {
    const file = configFile(
      'network:\n  rpcUrl: https://user:pw@rpc.example.org/v3/SECRETKEY?token=abc\n  chainId: 1\n  marketplaceAddress: "0x00000000000000000000000000000000000000aa"\n',
    );
    const run = await runCli(['--config', file, 'config', 'print']);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toMatch(/SECRETKEY|token=abc|pw@/);
    const shown = YAML.parse(run.stdout) as { network: { rpcUrl: string } };
    expect(shown.network.rpcUrl).toBe('https://rpc.example.org/[redacted]');
  });

  it('check exits 2 with one line per problem naming the key, the problem and where it came from', async () => {
    const file = configFile('api:\n  port: 0\nlog:\n  levle: debug\n');
    const run = await runCli(['--config', file, 'config', 'check']);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trim().split('\n');
    expect(lines[0]).toBe(`provider: invalid configuration in ${file}:`);
    expect(lines.slice(1).sort()).toEqual([
      `  api.port: got 0: Too small: expected number to be >=1 [${file}:2]`,
      `  log.levle: unknown key; did you mean "level"? [${file}:4]`,
    ]);
  });

  it('check exits 0 on the example config', async () => {
    const run = await runCli(['--config', join(__dirname, '..', '..', '..', 'config', 'provider.example.yaml'), 'config', 'check']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/configuration is valid/);
  });

  it('exits 2 and names the fix when --config points nowhere', async () => {
    const run = await runCli(['--config', '/nonexistent/provider.yaml', 'config', 'check']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/config file \/nonexistent\/provider.yaml does not exist\n {2}fix: /);
  });

  it('refuses a --set without a value', async () => {
    const run = await runCli(['--set', 'api.port', 'config', 'check']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--set api.port: expected key.path=value/);
  });

  it('schema prints JSON Schema an editor can use', async () => {
    const run = await runCli(['config', 'schema']);
    expect(run.code).toBe(0);
    const schema = JSON.parse(run.stdout) as { type: string; properties: Record<string, unknown>; additionalProperties: boolean };
    expect(schema.type).toBe('object');
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['dataDir', 'api', 'pricing', 'gpu', 'admission', 'runtime']));
  });
});

describe('provider (program)', () => {
  it('exits 2 on an unknown command or option', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2);
    expect((await runCli(['config', 'print', '--bogus'])).code).toBe(2);
  });

  it('exits 0 for --help and --version', async () => {
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: provider/);
    const version = await runCli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('refuses a log level that does not exist', async () => {
    const run = await runCli(['--log-level', 'loud', 'config', 'check']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/Allowed choices are fatal, error/);
  });
});
