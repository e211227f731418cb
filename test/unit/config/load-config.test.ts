import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigInvalidError, loadConfig, type ConfigSources } from '../../../src/config';
import { isProviderError } from '../../../src/errors';
import { tempDir } from '../../support/cli-io';

function sources(overrides: Partial<ConfigSources> = {}): ConfigSources {
  const home = tempDir('provider-home-');
  return { env: {}, uid: 1000, home, cwd: home, ...overrides };
}

function withFile(yaml: string, overrides: Partial<ConfigSources> = {}): ConfigSources {
  const dir = tempDir();
  const file = join(dir, 'provider.yaml');
  writeFileSync(file, yaml);
  return sources({ file, ...overrides });
}

function problemsOf(fn: () => unknown): ConfigInvalidError['problems'] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigInvalidError) return err.problems;
    throw err;
  }
  throw new Error('expected the config to be refused');
}

describe('loadConfig', () => {
  it('gives every default when there is no file, no environment and no flag', () => {
    const src = sources();
    const { config, file } = loadConfig(src);
    expect(file).toBeUndefined();
    expect(config.dataDir).toBe(join(src.home, '.local', 'share', 'provider'));
    expect(config.api.port).toBe(8420);
    expect(config.network).toBeUndefined();
    expect(config.reserve.memoryBytes).toBe(2 * 2 ** 30);
    expect(config.gpu).toMatchObject({ offer: 'all', mode: 'runtime' });
  });

  it('uses system paths when running as root', () => {
    const { config } = loadConfig(sources({ uid: 0 }));
    expect(config.dataDir).toBe('/var/lib/provider');
  });

  it('applies file, then PROVIDER_* environment, then flags', () => {
    const src = withFile('api:\n  port: 9001\n  host: 127.0.0.1\nlog:\n  level: warn\nregion: file-region\n', {
      env: { PROVIDER_API__PORT: '9002', PROVIDER_LOG__LEVEL: 'debug' },
      flags: [{ path: 'api.port', value: 9003, flag: '--set api.port' }],
    });
    const { config } = loadConfig(src);
    expect(config.api.port).toBe(9003);
    expect(config.api.host).toBe('127.0.0.1');
    expect(config.log.level).toBe('debug');
    expect(config.region).toBe('file-region');
  });

  it('reads nested camelCase keys from SNAKE_CASE environment variables', () => {
    const { config } = loadConfig(
      sources({ env: { PROVIDER_RUNTIME__EGRESS__ALLOW_CIDRS: '[10.1.0.0/16, 10.2.0.0/16]', PROVIDER_DATA_DIR: '/srv/p' } }),
    );
    expect(config.runtime.egress.allowCidrs).toEqual(['10.1.0.0/16', '10.2.0.0/16']);
    expect(config.dataDir).toBe('/srv/p');
  });

  it('takes PROVIDER_NVIDIA_SMI as gpu.nvidiaSmiPath, over the file and under a flag', () => {
    const src = withFile('gpu:\n  nvidiaSmiPath: /from/file\n', { env: { PROVIDER_NVIDIA_SMI: '/from/env' } });
    expect(loadConfig(src).config.gpu.nvidiaSmiPath).toBe('/from/env');
    const flagged = { ...src, flags: [{ path: 'gpu.nvidiaSmiPath', value: '/from/flag', flag: '--set gpu.nvidiaSmiPath' }] };
    expect(loadConfig(flagged).config.gpu.nvidiaSmiPath).toBe('/from/flag');
    expect(loadConfig(sources({ env: { PROVIDER_NVIDIA_SMI: '' } })).config.gpu.nvidiaSmiPath).toBeUndefined();
  });

  it('keeps 0x addresses from the environment and flags as strings', () => {
    const address = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
    const { config } = loadConfig(
      sources({
        env: { PROVIDER_NETWORK__RPC_URL: 'http://127.0.0.1:8545', PROVIDER_NETWORK__CHAIN_ID: '31337', PROVIDER_NETWORK__MARKETPLACE_ADDRESS: address },
        flags: [{ path: 'admission.tenants.allow', value: [address], flag: '--set admission.tenants.allow' }],
      }),
    );
    expect(config.network?.marketplaceAddress).toBe(address);
    expect(config.network?.chainId).toBe(31337);
  });

  it('finds the file named by PROVIDER_CONFIG, and a flag beats it', () => {
    const a = withFile('region: from-env-file\n');
    const b = withFile('region: from-flag-file\n');
    expect(loadConfig(sources({ env: { PROVIDER_CONFIG: a.file } })).config.region).toBe('from-env-file');
    expect(loadConfig(sources({ env: { PROVIDER_CONFIG: a.file }, file: b.file })).config.region).toBe('from-flag-file');
  });

  it('warns about, and ignores, PROVIDER_* variables that are not config keys', () => {
    const { warnings } = loadConfig(sources({ env: { PROVIDER_LOG_LEVEL: 'debug', PROVIDER_KEYSTORE_PASSWORD: 'x' } }));
    expect(warnings).toEqual([expect.stringContaining('PROVIDER_LOG_LEVEL is not a config key')]);
  });

  it('--devnet drops a configured network', () => {
    const network = 'network:\n  rpcUrl: http://127.0.0.1:1\n  chainId: 5\n  marketplaceAddress: "0x00000000000000000000000000000000000000aa"\n';
    expect(loadConfig(withFile(network)).config.network?.chainId).toBe(5);
    expect(loadConfig(withFile(network, { devnet: true })).config.network).toBeUndefined();
  });

  it('parses sizes with units and keeps prices as exact decimal strings', () => {
    const { config } = loadConfig(
      withFile('reserve:\n  memoryBytes: 512MiB\n  diskBytes: 1G\npricing:\n  perCpuSecond: "123456789012345678901234"\n  perGpuSecond: 7\n'),
    );
    expect(config.reserve.memoryBytes).toBe(512 * 2 ** 20);
    expect(config.reserve.diskBytes).toBe(1e9);
    expect(config.pricing.perCpuSecond).toBe('123456789012345678901234');
    expect(config.pricing.perGpuSecond).toBe('7');
  });

  describe('refuses', () => {
    it('an explicit file that does not exist, naming it', () => {
      const missing = join(tempDir(), 'nope.yaml');
      try {
        loadConfig(sources({ file: missing }));
        throw new Error('expected a refusal');
      } catch (err) {
        expect(isProviderError(err, 'CONFIG_NOT_FOUND')).toBe(true);
        expect((err as Error).message).toContain(missing);
      }
    });

    it('a file that is not YAML, with its line', () => {
      const src = withFile('api:\n  port: 1\n bad: [\n');
      const [problem] = problemsOf(() => loadConfig(src));
      expect(problem?.message).toMatch(/not valid YAML/);
      expect(problem?.origin).toMatchObject({ kind: 'file', file: src.file });
    });

    it('a file whose top level is not a mapping', () => {
      const [problem] = problemsOf(() => loadConfig(withFile('- a\n- b\n')));
      expect(problem?.message).toMatch(/expected a mapping/);
    });

    it('an unknown key, suggesting the one meant and pointing at its line', () => {
      const src = withFile('region: x\napi:\n  prot: 9000\n');
      expect(problemsOf(() => loadConfig(src))).toEqual([
        { path: 'api.prot', origin: { kind: 'file', file: src.file, line: 3 }, message: 'unknown key; did you mean "port"?' },
      ]);
    });

    it('a value of the wrong type, saying what it got and what is expected', () => {
      const src = withFile('api:\n  port: "eighty"\n');
      expect(problemsOf(() => loadConfig(src))).toEqual([
        { path: 'api.port', origin: { kind: 'file', file: src.file, line: 2 }, message: 'got "eighty", expected number' },
      ]);
    });

    it('a value out of range', () => {
      const [problem] = problemsOf(() => loadConfig(withFile('api:\n  port: 70000\n')));
      expect(problem).toMatchObject({ path: 'api.port' });
      expect(problem?.message).toMatch(/got 70000: .*65535/);
    });

    it('a value not among the choices', () => {
      const [problem] = problemsOf(() => loadConfig(withFile('gpu:\n  mode: magic\n')));
      expect(problem).toMatchObject({ path: 'gpu.mode' });
      expect(problem?.message).toMatch(/"magic".*"runtime".*"cdi"/);
    });

    it('a malformed size or price', () => {
      const problems = problemsOf(() => loadConfig(withFile('reserve:\n  memoryBytes: lots\npricing:\n  perCpuSecond: "1.5"\n')));
      const byPath = new Map(problems.map((p) => [p.path, p.message]));
      expect([...byPath.keys()].sort()).toEqual(['pricing.perCpuSecond', 'reserve.memoryBytes']);
      expect(byPath.get('reserve.memoryBytes')).toMatch(/expected a size such as 512MiB/);
      expect(byPath.get('pricing.perCpuSecond')).toMatch(/whole number of token base units/);
    });

    it('a network missing its required keys, one problem per key', () => {
      const problems = problemsOf(() => loadConfig(withFile('network:\n  rpcUrl: http://127.0.0.1:8545\n')));
      expect(problems.map((p) => [p.path, p.message])).toEqual([
        ['network.chainId', 'required: expected number'],
        ['network.marketplaceAddress', 'required: expected string'],
      ]);
    });

    it('a bad environment variable, naming the variable', () => {
      const [problem] = problemsOf(() => loadConfig(sources({ env: { PROVIDER_API__PORT: 'abc' } })));
      expect(problem).toEqual({ path: 'api.port', origin: { kind: 'env', variable: 'PROVIDER_API__PORT' }, message: 'got "abc", expected number' });
    });

    it('a bad flag, naming the flag, even when the file sets the same key well', () => {
      const [problem] = problemsOf(() =>
        loadConfig(withFile('api:\n  port: 9000\n', { flags: [{ path: 'api.port', value: -1, flag: '--set api.port' }] })),
      );
      expect(problem).toMatchObject({ path: 'api.port', origin: { kind: 'flag', flag: '--set api.port' } });
    });

    it('every problem at once rather than the first', () => {
      const problems = problemsOf(() => loadConfig(withFile('api:\n  port: x\nlog:\n  level: loud\nbogus: 1\n')));
      expect(problems.map((p) => p.path).sort()).toEqual(['api.port', 'bogus', 'log.level']);
    });

    it('a CIDR that is not one, and a zero size where zero breaks every lease', () => {
      const problems = problemsOf(() => loadConfig(withFile('runtime:\n  logMaxSize: 0\n  egress:\n    allowCidrs: ["999.1.1.1/99"]\n')));
      const byPath = new Map(problems.map((p) => [p.path, p.message]));
      expect(byPath.get('runtime.egress.allowCidrs.0')).toMatch(/expected a CIDR range/);
      expect(byPath.get('runtime.logMaxSize')).toMatch(/expected a size above zero/);
    });

    it('a malformed RPC URL without echoing it (it may carry an API key)', () => {
      const [problem] = problemsOf(() =>
        loadConfig(withFile('network:\n  rpcUrl: "htps//rpc.example.org/v3/SECRETKEY"\n  chainId: 1\n  marketplaceAddress: "0x00000000000000000000000000000000000000aa"\n')),
      );
      expect(problem?.path).toBe('network.rpcUrl');
      expect(problem?.message).not.toMatch(/SECRETKEY/);
      expect(problem?.message).toMatch(/not shown/);
    });

    it('a portRange whose start is after its end', () => {
      const [problem] = problemsOf(() => loadConfig(withFile('runtime:\n  portRange:\n    from: 40000\n    to: 30000\n')));
      expect(problem).toMatchObject({ path: 'runtime.portRange', message: expect.stringContaining('from <= portRange.to') });
    });
  });
});
