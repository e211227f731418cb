import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { createKeystore, loadKeystore } from '../../../src/chain/keys';
import { isProviderError, ProviderError } from '../../../src/errors';

const KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
let dir: string;
let path: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'provider-keys-'));
  path = join(dir, 'keystore.json');
  await createKeystore(path, 'correct horse', { scryptN: 1024, privateKey: KEY });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (err) {
    if (isProviderError(err)) return err;
    throw err;
  }
  throw new Error('expected a failure');
}

function leaks(err: ProviderError, secret: string): boolean {
  return [err.message, err.fix ?? '', JSON.stringify(err.input ?? null), inspect(err, { depth: 5 })].some((text) =>
    text.includes(secret),
  );
}

describe('keystore', () => {
  it('decrypts with the password from the named env var', async () => {
    const wallet = await loadKeystore({ path, passwordEnv: 'PW' }, { PW: 'correct horse' });
    expect(wallet.address).toBe('0x70997970C51812dc3A010C7d01b50e0d17dc79C8');
    expect(JSON.stringify(wallet)).not.toContain(KEY.slice(2));
    expect(inspect(wallet, { depth: 10, showHidden: true })).not.toContain(KEY.slice(2));
  });

  it('prefers the first line of the password file', async () => {
    const file = join(dir, 'pw');
    writeFileSync(file, 'correct horse\nignored\n');
    const wallet = await loadKeystore({ path, passwordFile: file, passwordEnv: 'PW' }, { PW: 'wrong' });
    expect(wallet.address).toBe('0x70997970C51812dc3A010C7d01b50e0d17dc79C8');
  });

  it('refuses a wrong password without repeating it', async () => {
    const err = await failure(loadKeystore({ path, passwordEnv: 'PW' }, { PW: 'battery staple' }));
    expect(err.code).toBe('KEYSTORE_BAD_PASSWORD');
    expect(err.fix).toMatch(/PW/);
    expect(leaks(err, 'battery staple')).toBe(false);
    expect(leaks(err, KEY.slice(2))).toBe(false);
  });

  it('names the variable to set when no password is given', async () => {
    const err = await failure(loadKeystore({ path, passwordEnv: 'PROVIDER_KEYSTORE_PASSWORD' }, {}));
    expect(err.code).toBe('KEYSTORE_PASSWORD_MISSING');
    expect(err.fix).toMatch(/PROVIDER_KEYSTORE_PASSWORD/);
  });

  it('reports a missing or malformed keystore by path', async () => {
    expect((await failure(loadKeystore({ path: join(dir, 'nope.json'), passwordEnv: 'PW' }, { PW: 'x' }))).code).toBe('KEYSTORE_NOT_FOUND');
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"hello": 1}');
    expect((await failure(loadKeystore({ path: bad, passwordEnv: 'PW' }, { PW: 'x' }))).code).toBe('KEYSTORE_INVALID');
  });

  it('never overwrites an existing keystore', async () => {
    await expect(createKeystore(path, 'other', { scryptN: 1024 })).rejects.toThrow();
    expect(readFileSync(path, 'utf8')).toContain('"address"');
  });
});
