import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Wallet, encryptKeystoreJson, isKeystoreJson } from 'ethers';
import { ProviderError } from '../errors';

/**
 * The provider's signing key lives only in an ethers encrypted JSON keystore. The password comes
 * from a file or from an environment variable whose *name* is configured; the environment is
 * passed in, so nothing here reads process.env. No error, log line or returned object carries the
 * key or the password: errors name the file and the variable, never their contents.
 */
export interface KeystoreSettings {
  path: string;
  passwordFile?: string;
  passwordEnv: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** The `keystore` config section resolved against the data dir (default `<dataDir>/keystore.json`). */
export function keystoreSettings(keystore: { path?: string; passwordFile?: string; passwordEnv: string }, dataDir: string): KeystoreSettings {
  return { path: keystore.path ?? join(dataDir, 'keystore.json'), passwordFile: keystore.passwordFile, passwordEnv: keystore.passwordEnv };
}

/** Reads the keystore password from `passwordFile` (first line) or else the env var `passwordEnv`. */
export async function readKeystorePassword(settings: KeystoreSettings, env: Env): Promise<string> {
  if (settings.passwordFile) {
    let text: string;
    try {
      text = await readFile(settings.passwordFile, 'utf8');
    } catch (err) {
      throw new ProviderError('KEYSTORE_PASSWORD_MISSING', `cannot read the keystore password file ${settings.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, {
        input: 'keystore.passwordFile',
        fix: 'point keystore.passwordFile at a file readable by the daemon (mode 0600) whose first line is the password',
      });
    }
    const password = text.split(/\r?\n/, 1)[0] ?? '';
    if (password.length === 0) {
      throw new ProviderError('KEYSTORE_PASSWORD_MISSING', `the keystore password file ${settings.passwordFile} is empty`, {
        input: 'keystore.passwordFile',
        fix: 'write the password on the first line of the file',
      });
    }
    return password;
  }
  const password = env[settings.passwordEnv];
  if (!password) {
    throw new ProviderError('KEYSTORE_PASSWORD_MISSING', `no keystore password: ${settings.passwordEnv} is not set and keystore.passwordFile is not configured`, {
      input: 'keystore.passwordEnv',
      fix: `set ${settings.passwordEnv} in the daemon's environment, or set keystore.passwordFile`,
    });
  }
  return password;
}

/** Decrypts the keystore. The Wallet returned holds the key in private fields; it is not printable. */
export async function loadKeystore(settings: KeystoreSettings, env: Env): Promise<Wallet> {
  let json: string;
  try {
    json = await readFile(settings.path, 'utf8');
  } catch (err) {
    throw new ProviderError('KEYSTORE_NOT_FOUND', `no keystore at ${settings.path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`, {
      input: 'keystore.path',
      fix: 'create one (an ethers/geth encrypted JSON keystore) at that path, or set keystore.path; on the devnet none is needed',
    });
  }
  if (!isKeystoreJson(json)) {
    throw new ProviderError('KEYSTORE_INVALID', `${settings.path} is not an encrypted JSON keystore`, {
      input: 'keystore.path',
      fix: 'use a version 3 JSON keystore as written by ethers, geth or cast wallet',
    });
  }
  const password = await readKeystorePassword(settings, env);
  let wallet: Awaited<ReturnType<typeof Wallet.fromEncryptedJson>>;
  try {
    wallet = await Wallet.fromEncryptedJson(json, password);
  } catch (err) {
    const wrong = /password/i.test((err as Error).message);
    throw new ProviderError(
      wrong ? 'KEYSTORE_BAD_PASSWORD' : 'KEYSTORE_INVALID',
      wrong ? `wrong password for the keystore ${settings.path}` : `cannot decrypt the keystore ${settings.path}`,
      {
        input: 'keystore.path',
        fix: wrong
          ? `check ${settings.passwordFile ? 'keystore.passwordFile' : settings.passwordEnv}`
          : 'restore the keystore file from a backup',
      },
    );
  }
  // An HD wallet would carry its mnemonic along; keep only the signing key.
  return new Wallet(wallet.privateKey);
}

export interface CreateKeystoreOptions {
  /** scrypt cost; lower it only in tests (the default takes about a second on purpose). */
  scryptN?: number;
  /** An existing key to encrypt; a fresh random one when absent. */
  privateKey?: string;
}

/** Writes a new encrypted keystore (mode 0600) and returns its address. */
export async function createKeystore(path: string, password: string, options: CreateKeystoreOptions = {}): Promise<string> {
  const wallet = options.privateKey ? new Wallet(options.privateKey) : Wallet.createRandom();
  const json = await encryptKeystoreJson(
    { address: wallet.address, privateKey: wallet.privateKey },
    password,
    options.scryptN ? { scrypt: { N: options.scryptN } } : {},
  );
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, json, { mode: 0o600, flag: 'wx' });
  return wallet.address;
}
