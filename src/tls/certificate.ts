import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { ProviderError } from '../errors';

/**
 * Node's crypto parses and checks certificates (X509Certificate.checkPrivateKey) but cannot make
 * one; @peculiar/x509 builds the DER over WebCrypto, so no openssl binary is spawned. Its
 * decorators need reflect-metadata loaded first (the import above).
 */
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface CertificatePair {
  certPem: string;
  keyPem: string;
}

export interface CertificateInfo {
  /** SHA-256 of the DER certificate, 64 lower-case hex digits: what is pinned on-chain. */
  sha256: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names and IP addresses the certificate names (informational: tenants pin, not name-check). */
  altNames: string[];
  selfSigned: boolean;
}

const DAY_MS = 86_400_000;

/** A fresh EC P-256 key and a self-signed certificate for `hosts`, valid `validityDays` from `now`. */
export async function generateSelfSigned(options: { hosts: readonly string[]; validityDays: number; now: number }): Promise<CertificatePair> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names = [...new Set(options.hosts)].map((host) => ({ type: isIP(host) ? ('ip' as const) : ('dns' as const), value: host }));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    // Positive and 16 bytes: RFC 5280 asks for at most 20 octets, unique per issuer.
    serialNumber: `01${randomBytes(15).toString('hex')}`,
    name: 'CN=provider',
    // A minute back: a tenant whose clock is slightly behind must not see it "not yet valid".
    notBefore: new Date(options.now - 60_000),
    notAfter: new Date(options.now + options.validityDays * DAY_MS),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey);
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

/** SHA-256 of a DER certificate as the pin is written: 64 lower-case hex digits. */
export function sha256OfDer(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/** A pin as operators and tools write it (`AB:CD:...`, upper or lower case), normalised; undefined when it is not one. */
export function normalisePin(text: string): string | undefined {
  const hex = text.trim().replace(/^sha256[:/]/i, '').replace(/:/g, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

/** The pin as `openssl x509 -fingerprint -sha256` prints it, for people comparing by eye. */
export function formatPin(sha256: string): string {
  return (sha256.toUpperCase().match(/../g) ?? []).join(':');
}

/**
 * Parses a certificate and its key and checks they belong together and that the certificate is
 * valid at `now`. Throws TLS_CERT_INVALID naming what is wrong and the file it came from.
 */
export function inspectCertificate(pair: CertificatePair, now: number, source = 'the certificate'): CertificateInfo {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pair.certPem);
  } catch (err) {
    throw invalid(`${source} is not a PEM certificate: ${(err as Error).message}`, source, 'give a PEM file that starts with -----BEGIN CERTIFICATE-----', err);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(pair.keyPem);
  } catch (err) {
    throw invalid(`the key of ${source} is not a PEM private key: ${(err as Error).message}`, source, 'give the unencrypted PEM private key the certificate was issued for', err);
  }
  if (!cert.checkPrivateKey(key)) {
    throw invalid(`the key does not belong to ${source}`, source, 'give the private key the certificate was issued for (api.tls.keyFile)');
  }
  const info = describe(cert);
  if (now < info.notBefore.getTime()) {
    throw invalid(`${source} is not valid before ${info.notBefore.toISOString()}`, source, 'check the clock of this machine, or use a certificate valid now');
  }
  if (now >= info.notAfter.getTime()) {
    throw invalid(`${source} expired at ${info.notAfter.toISOString()}`, source, 'renew the certificate (or remove api.tls.certFile/keyFile to let the daemon make its own)');
  }
  return info;
}

/** What a certificate says, without checks (doctor reports an expired one rather than failing to read it). */
export function describeCertificate(certPem: string): CertificateInfo {
  return describe(new X509Certificate(certPem));
}

function describe(cert: X509Certificate): CertificateInfo {
  const altNames = (cert.subjectAltName ?? '')
    .split(',')
    .map((name) => canonicalHost(name.trim().replace(/^(DNS|IP Address):/, '')))
    .filter((name) => name !== '');
  return {
    sha256: sha256OfDer(cert.raw),
    subject: cert.subject.replace(/\n/g, ', '),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    altNames,
    // checkIssued would also want keyCertSign, which a server certificate has no use for.
    selfSigned: cert.issuer === cert.subject && cert.verify(cert.publicKey),
  };
}

/** Node spells IPv6 names in full (0:0:0:0:0:0:0:1); compared as URLs write them (::1). */
function canonicalHost(name: string): string {
  if (!name.includes(':')) return name;
  try {
    return new URL(`http://[${name}]`).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return name;
  }
}

/** When a certificate is due for renewal: `renewBeforeDays` before it expires. */
export function renewalDue(info: Pick<CertificateInfo, 'notAfter'>, renewBeforeDays: number): number {
  return info.notAfter.getTime() - renewBeforeDays * DAY_MS;
}

function invalid(message: string, source: string, fix: string, cause?: unknown): ProviderError {
  return new ProviderError('TLS_CERT_INVALID', message, { input: source, fix, ...(cause ? { cause } : {}) });
}
