import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProviderConfig } from '../config';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import { describeCertificate, generateSelfSigned, inspectCertificate, renewalDue, type CertificateInfo, type CertificatePair } from './certificate';

export type TlsSettings = ProviderConfig['api']['tls'];

export interface ApiCertificate extends CertificatePair {
  info: CertificateInfo;
  /** self: made by the daemon in <dataDir>/tls; operator: api.tls.certFile and keyFile. */
  source: 'self' | 'operator';
  certPath: string;
  keyPath: string;
}

/** Where the daemon keeps the certificate it makes. */
export function selfSignedPaths(dataDir: string): { certPath: string; keyPath: string } {
  return { certPath: join(dataDir, 'tls', 'cert.pem'), keyPath: join(dataDir, 'tls', 'key.pem') };
}

/** The files the API's certificate is read from under this config. */
export function certificatePaths(config: Pick<ProviderConfig, 'api' | 'dataDir'>): { certPath: string; keyPath: string; source: 'self' | 'operator' } {
  const { certFile, keyFile } = config.api.tls;
  if (certFile && keyFile) return { certPath: certFile, keyPath: keyFile, source: 'operator' };
  return { ...selfSignedPaths(config.dataDir), source: 'self' };
}

/**
 * The names a self-made certificate carries: the advertised host and the bound one, and loopback.
 * Tenants pin the certificate rather than check names; the names help people and tools that look.
 */
export function certificateHosts(config: Pick<ProviderConfig, 'api'>): string[] {
  const hosts = ['localhost', '127.0.0.1', '::1'];
  if (config.api.host !== '0.0.0.0' && config.api.host !== '::') hosts.unshift(config.api.host);
  if (config.api.publicUrl) hosts.unshift(new URL(config.api.publicUrl).hostname.replace(/^\[|\]$/g, ''));
  return [...new Set(hosts)];
}

/**
 * The API's certificate, ready to serve. The operator's is read and checked (a warning when it is
 * due for renewal: renewing it is theirs). The daemon's own is made when missing, unreadable, due
 * for renewal or not naming the advertised host, and written with its key (mode 0600).
 */
export async function ensureCertificate(options: { config: Pick<ProviderConfig, 'api' | 'dataDir'>; now: number; log: Logger }): Promise<ApiCertificate> {
  const { config, now, log } = options;
  const settings = config.api.tls;
  const paths = certificatePaths(config);
  if (paths.source === 'operator') {
    const pair = readPair(paths.certPath, paths.keyPath);
    const info = inspectCertificate(pair, now, paths.certPath);
    if (now >= renewalDue(info, settings.renewBeforeDays)) {
      log.warn({ certFile: paths.certPath, notAfter: info.notAfter.toISOString() }, `the API certificate expires in ${daysLeft(info, now)} days: renew it, then restart the daemon (the new pin is registered at start)`);
    }
    return { ...pair, info, ...paths };
  }
  const existing = readOwn(paths.certPath, paths.keyPath, now, log);
  const hosts = certificateHosts(config);
  if (existing && now < renewalDue(existing.info, settings.renewBeforeDays) && hosts.every((host) => existing.info.altNames.includes(host))) {
    return { ...existing, ...paths };
  }
  const pair = await generateSelfSigned({ hosts, validityDays: settings.validityDays, now });
  writeOwn(paths.certPath, paths.keyPath, pair);
  const info = inspectCertificate(pair, now, paths.certPath);
  log.info(
    { certFile: paths.certPath, sha256: info.sha256, notAfter: info.notAfter.toISOString(), replaced: existing?.info.sha256 ?? null },
    existing ? 'renewed the API certificate (a new pin goes on-chain)' : 'made the API certificate (its pin goes on-chain)',
  );
  return { ...pair, info, ...paths };
}

/** The daemon's own certificate as stored, or undefined when it must be made again (said in the log). */
function readOwn(certPath: string, keyPath: string, now: number, log: Logger): (CertificatePair & { info: CertificateInfo }) | undefined {
  if (!existsSync(certPath) && !existsSync(keyPath)) return undefined;
  try {
    const pair = readPair(certPath, keyPath);
    return { ...pair, info: inspectCertificate(pair, now, certPath) };
  } catch (err) {
    log.warn({ err: describeError(err), certFile: certPath }, 'the stored API certificate is unusable; making a new one');
    return undefined;
  }
}

function readPair(certPath: string, keyPath: string): CertificatePair {
  const read = (path: string, what: string): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new ProviderError('TLS_CERT_INVALID', `cannot read the API ${what} ${path}: ${describeError(err)}`, {
        input: path,
        cause: err,
        fix: `check api.tls.${what === 'certificate' ? 'certFile' : 'keyFile'} names a file the daemon's user can read`,
      });
    }
  };
  return { certPem: read(certPath, 'certificate'), keyPem: read(keyPath, 'key') };
}

/** Key first and each file whole (write, then rename): a crash never leaves a certificate without its key. */
function writeOwn(certPath: string, keyPath: string, pair: CertificatePair): void {
  mkdirSync(join(certPath, '..'), { recursive: true, mode: 0o700 });
  for (const [path, text, mode] of [
    [keyPath, pair.keyPem, 0o600],
    [certPath, pair.certPem, 0o644],
  ] as const) {
    const temporary = `${path}.tmp`;
    writeFileSync(temporary, text, { mode });
    chmodSync(temporary, mode);
    renameSync(temporary, path);
  }
}

/** Whole days until the certificate expires (0 on its last day). */
export function daysLeft(info: Pick<CertificateInfo, 'notAfter'>, now: number): number {
  return Math.max(0, Math.floor((info.notAfter.getTime() - now) / 86_400_000));
}

/** The stored certificate as it is, expired or not, for doctor; undefined when there is none. */
export function readCertificateInfo(config: Pick<ProviderConfig, 'api' | 'dataDir'>): { info: CertificateInfo; pair: CertificatePair; source: 'self' | 'operator'; certPath: string } | undefined {
  const paths = certificatePaths(config);
  if (!existsSync(paths.certPath)) return undefined;
  const pair = readPair(paths.certPath, paths.keyPath);
  return { info: describeCertificate(pair.certPem), pair, source: paths.source, certPath: paths.certPath };
}
