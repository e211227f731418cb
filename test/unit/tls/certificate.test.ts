import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isProviderError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { pinFromMetadata } from '../../../src/tenant';
import { ensureCertificate, formatPin, generateSelfSigned, inspectCertificate, normalisePin, renewalDue, selfSignedPaths } from '../../../src/tls';
import { configSchema, type ProviderConfig } from '../../../src/config';

const DAY = 86_400_000;

function aConfig(overrides: { dataDir: string; api?: object }): ProviderConfig {
  return configSchema.parse(overrides);
}
const NOW = Date.parse('2026-12-01T00:00:00Z');

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('the API certificate', () => {
  it('makes an EC P-256 self-signed certificate naming the hosts, valid for the days asked, pinned by the SHA-256 of its DER', async () => {
    const pair = await generateSelfSigned({ hosts: ['gpu.example.org', '198.51.100.7', '::1'], validityDays: 30, now: NOW });
    const info = inspectCertificate(pair, NOW + 1000);
    const node = new X509Certificate(pair.certPem);
    // What `openssl x509 -fingerprint -sha256` prints, without the colons.
    expect(info.sha256).toBe(node.fingerprint256.replace(/:/g, '').toLowerCase());
    expect(info.altNames).toEqual(['gpu.example.org', '198.51.100.7', '::1']);
    expect(info.notAfter.getTime()).toBe(Math.floor((NOW + 30 * DAY) / 1000) * 1000);
    expect(info.selfSigned).toBe(true);
    expect(node.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
    expect(pair.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('refuses a key that is not the certificate\'s, an expired certificate, one not yet valid and one that is not PEM', async () => {
    const a = await generateSelfSigned({ hosts: ['a'], validityDays: 10, now: NOW });
    const b = await generateSelfSigned({ hosts: ['b'], validityDays: 10, now: NOW });
    const cases: [unknown, RegExp][] = [
      [errorOf(() => inspectCertificate({ certPem: a.certPem, keyPem: b.keyPem }, NOW, '/etc/cert.pem')), /the key does not belong to \/etc\/cert\.pem/],
      [errorOf(() => inspectCertificate(a, NOW + 11 * DAY, '/etc/cert.pem')), /\/etc\/cert\.pem expired at 2026-12-11/],
      [errorOf(() => inspectCertificate(a, NOW - DAY, '/etc/cert.pem')), /is not valid before/],
      [errorOf(() => inspectCertificate({ certPem: 'hello', keyPem: a.keyPem }, NOW, '/etc/cert.pem')), /is not a PEM certificate/],
      [errorOf(() => inspectCertificate({ certPem: a.certPem, keyPem: 'hello' }, NOW, '/etc/cert.pem')), /is not a PEM private key/],
    ];
    for (const [err, message] of cases) {
      expect(isProviderError(err, 'TLS_CERT_INVALID')).toBe(true);
      expect((err as Error).message).toMatch(message);
      expect((err as { fix?: string }).fix).toBeTruthy();
    }
  });

  it('writes pins as 64 lower-case hex digits and reads them in the forms people copy', () => {
    const hex = 'ab'.repeat(32);
    expect(formatPin(hex)).toBe(Array(32).fill('AB').join(':'));
    expect(normalisePin(formatPin(hex))).toBe(hex);
    expect(normalisePin(`sha256/${hex.toUpperCase()}`)).toBe(hex);
    expect(normalisePin('ab'.repeat(31))).toBeUndefined();
    expect(normalisePin('zz'.repeat(32))).toBeUndefined();
  });

  it('reads the pin from a provider\'s metadata, and nothing from metadata without one or not JSON', () => {
    const hex = 'cd'.repeat(32);
    expect(pinFromMetadata(JSON.stringify({ region: 'eu', tls: { sha256: hex } }))).toBe(hex);
    expect(pinFromMetadata(JSON.stringify({ region: 'eu' }))).toBeUndefined();
    expect(pinFromMetadata(JSON.stringify({ tls: { sha256: 'not a pin' } }))).toBeUndefined();
    expect(pinFromMetadata('{')).toBeUndefined();
    expect(pinFromMetadata('null')).toBeUndefined();
  });
});

describe('ensureCertificate', () => {
  const dataDir = (): string => mkdtempSync(join(tmpdir(), 'provider-tls-'));

  it('makes the certificate at first start (key 0600), keeps it across starts, and renews it once due', async () => {
    const dir = dataDir();
    const config = aConfig({ dataDir: dir, api: { publicUrl: 'https://gpu.example.org:8420', tls: { validityDays: 90, renewBeforeDays: 30 } } });
    const first = await ensureCertificate({ config, now: NOW, log: silentLogger() });
    const { certPath, keyPath } = selfSignedPaths(dir);
    expect(first.source).toBe('self');
    expect(readFileSync(certPath, 'utf8')).toBe(first.certPem);
    expect(statSync(keyPath).mode & 0o777).toBe(0o600);
    expect(first.info.altNames).toContain('gpu.example.org');

    const again = await ensureCertificate({ config, now: renewalDue(first.info, 30) - 1000, log: silentLogger() });
    expect(again.info.sha256).toBe(first.info.sha256);

    const renewed = await ensureCertificate({ config, now: renewalDue(first.info, 30), log: silentLogger() });
    expect(renewed.info.sha256).not.toBe(first.info.sha256);
    expect(readFileSync(certPath, 'utf8')).toBe(renewed.certPem);
  });

  it('makes a new one when the advertised host changes, or the stored one is damaged', async () => {
    const dir = dataDir();
    const first = await ensureCertificate({ config: aConfig({ dataDir: dir }), now: NOW, log: silentLogger() });
    const moved = await ensureCertificate({ config: aConfig({ dataDir: dir, api: { publicUrl: 'https://new.example.org' } }), now: NOW, log: silentLogger() });
    expect(moved.info.sha256).not.toBe(first.info.sha256);
    writeFileSync(selfSignedPaths(dir).certPath, 'garbage');
    const repaired = await ensureCertificate({ config: aConfig({ dataDir: dir }), now: NOW, log: silentLogger() });
    expect(repaired.info.sha256).not.toBe(moved.info.sha256);
  });

  it('takes the operator\'s certificate as it is, refuses a mismatched key and never overwrites their files', async () => {
    const dir = dataDir();
    const own = await generateSelfSigned({ hosts: ['gpu.example.org'], validityDays: 20, now: NOW });
    const other = await generateSelfSigned({ hosts: ['x'], validityDays: 20, now: NOW });
    writeFileSync(join(dir, 'cert.pem'), own.certPem);
    writeFileSync(join(dir, 'key.pem'), own.keyPem);
    writeFileSync(join(dir, 'other.pem'), other.keyPem);
    const tls = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), renewBeforeDays: 30 };
    // Due for renewal (20 days left, renew 30 before): served, with a warning; renewing is theirs.
    const taken = await ensureCertificate({ config: aConfig({ dataDir: dir, api: { tls } }), now: NOW, log: silentLogger() });
    expect(taken.source).toBe('operator');
    expect(taken.info.sha256).toBe(inspectCertificate(own, NOW).sha256);
    const refused = await ensureCertificate({ config: aConfig({ dataDir: dir, api: { tls: { ...tls, keyFile: join(dir, 'other.pem') } } }), now: NOW, log: silentLogger() }).catch((err: unknown) => err);
    expect(isProviderError(refused, 'TLS_CERT_INVALID')).toBe(true);
    const expired = await ensureCertificate({ config: aConfig({ dataDir: dir, api: { tls } }), now: NOW + 21 * DAY, log: silentLogger() }).catch((err: unknown) => err);
    expect(isProviderError(expired, 'TLS_CERT_INVALID')).toBe(true);
    expect(readFileSync(join(dir, 'cert.pem'), 'utf8')).toBe(own.certPem);
  });
});
