import type { JsonRpcProvider } from 'ethers';
import { marketplaceAt } from '../chain';
import { describeError, isProviderError } from '../errors';
import { pinFromMetadata } from '../tenant';
import { certificatePaths, daysLeft, formatPin, inspectCertificate, readCertificateInfo, renewalDue, type CertificateInfo } from '../tls';
import type { ChainFacts, CheckResult, DoctorContext } from './checks';

/** Where the provider's registration is read from, when the chain can be asked. */
export interface RegistrationSource {
  rpc: JsonRpcProvider;
  marketplace: string;
  provider: string;
}

const result = (status: CheckResult['status'], detail: string, fix: string | null = null): CheckResult => ({ id: 'tls-cert', status, detail, fix });

/** The API certificate: present, readable, its key its own, and how long it has left. */
export function checkTlsCertificate(ctx: DoctorContext): { check: CheckResult; info: CertificateInfo | undefined } {
  const { config } = ctx;
  if (!config.api.tls.enabled) return { check: result('warn', 'api.tls.enabled is false: the API speaks plain HTTP, and tenants reach it only on loopback', 'remove api.tls.enabled: false'), info: undefined };
  const paths = certificatePaths(config);
  let found: ReturnType<typeof readCertificateInfo>;
  try {
    found = readCertificateInfo(config);
  } catch (err) {
    return { check: result('fail', describeError(err), isProviderError(err) ? (err.fix ?? null) : null), info: undefined };
  }
  if (!found) {
    if (paths.source === 'operator') return { check: result('fail', `api.tls.certFile ${paths.certPath} does not exist`, 'name the PEM certificate file (or remove certFile and keyFile to let the daemon make one)'), info: undefined };
    return { check: result('skip', `no certificate yet: \`provider start\` makes one in ${paths.certPath}`), info: undefined };
  }
  const { info, pair } = found;
  const now = ctx.clock.now();
  const kind = found.source === 'operator' ? `operator's certificate ${found.certPath}` : `self-signed certificate ${found.certPath}`;
  if (now >= info.notAfter.getTime()) {
    const fix = found.source === 'operator' ? 'renew it and restart the daemon' : 'restart the daemon: it makes a new one and registers its pin';
    return { check: result('fail', `${kind} expired at ${info.notAfter.toISOString()}`, fix), info };
  }
  try {
    inspectCertificate(pair, now, found.certPath);
  } catch (err) {
    return { check: result('fail', describeError(err), isProviderError(err) ? (err.fix ?? null) : null), info };
  }
  const left = daysLeft(info, now);
  const detail = `${kind}, SHA-256 ${formatPin(info.sha256)}, expires ${info.notAfter.toISOString().slice(0, 10)} (${left} days)`;
  if (now >= renewalDue(info, config.api.tls.renewBeforeDays)) {
    const fix = found.source === 'operator' ? 'renew it (api.tls.certFile), then restart the daemon: the new pin is registered at start' : 'the running daemon renews it and registers the new pin; restart it if it is not running';
    return { check: result('warn', `${detail}: fewer than api.tls.renewBeforeDays (${config.api.tls.renewBeforeDays})`, fix), info };
  }
  return { check: result('pass', detail), info };
}

/** The pin registered on-chain against the certificate on disk: a tenant refuses any difference. */
export async function checkTlsPin(ctx: DoctorContext, facts: ChainFacts, info: CertificateInfo | undefined): Promise<CheckResult> {
  const id = 'tls-pin';
  if (!info) return { id, status: 'skip', detail: 'no usable certificate', fix: null };
  let source: RegistrationSource | undefined;
  try {
    source = await registrationSource(ctx, facts);
  } catch (err) {
    return { id, status: 'skip', detail: `the chain cannot be asked: ${describeError(err)}`, fix: null };
  }
  if (!source) return { id, status: 'skip', detail: ctx.config.network ? 'needs the RPC and the key' : 'devnet: the daemon is not running (its chain runs with it)', fix: null };
  const registration = (await marketplaceAt(source.marketplace, source.rpc).read('getProvider', [source.provider])) as unknown as { status: bigint; metadata: string };
  if (Number(registration.status) === 0) return { id, status: 'skip', detail: 'not registered yet: `provider start` registers the pin', fix: null };
  const pinned = pinFromMetadata(registration.metadata);
  if (!pinned) return { id, status: 'fail', detail: 'the on-chain registration has no TLS pin: tenants cannot reach this provider', fix: 'restart the daemon: it registers its pin at start' };
  if (pinned !== info.sha256) {
    return {
      id,
      status: 'fail',
      detail: `on-chain pin ${formatPin(pinned)} is not the certificate's ${formatPin(info.sha256)}: tenants refuse this API (TLS_PIN_MISMATCH)`,
      fix: 'restart the daemon: it registers the pin of the certificate it serves',
    };
  }
  return { id, status: 'pass', detail: `the on-chain registration of ${source.provider} pins this certificate`, fix: null };
}

async function registrationSource(ctx: DoctorContext, facts: ChainFacts): Promise<RegistrationSource | undefined> {
  const network = ctx.config.network;
  if (network) {
    if (!ctx.rpc || !facts.rpcOk || !facts.wallet) return undefined;
    return { rpc: ctx.rpc, marketplace: network.marketplaceAddress, provider: facts.wallet.address };
  }
  return ctx.devnetRegistration?.();
}
