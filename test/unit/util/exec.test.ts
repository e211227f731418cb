import { childEnv, execFileAsync } from '../../../src/util/exec';

describe('execFileAsync', () => {
  it('gives children our environment without secrets', async () => {
    const env = { PATH: process.env.PATH, PROVIDER_KEYSTORE_PASSWORD: 'hunter2', AWS_SECRET_ACCESS_KEY: 'x', GITHUB_TOKEN: 'y', HOME: '/root' };
    const { stdout } = await execFileAsync('env', [], { timeoutMs: 5_000, env });
    expect(stdout).toMatch(/^HOME=\/root$/m);
    expect(stdout).not.toMatch(/hunter2|AWS_SECRET|GITHUB_TOKEN/);
  });

  it('keeps what is not a secret', () => {
    expect(childEnv({ PATH: '/bin', FAKE_NVIDIA_SMI_FIXTURE: 'a', DB_PASSWORD: 'p' })).toEqual({ PATH: '/bin', FAKE_NVIDIA_SMI_FIXTURE: 'a' });
  });
});
