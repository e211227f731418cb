import type { ProviderConfig } from '../config';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { globalIPv6, isPublicIPv4, publicIPv4, urlFor, type InterfaceTable } from './addresses';
import { RouterPortMapping, type NatDiscovery } from './port-mapping';
import type { RelaySettings } from './relay-tunnel';

/** How tenants reach the API: the path, the URL registered on-chain, and whether that was proven. */
export type ReachPath = 'public' | 'upnp' | 'ipv6' | 'relay' | 'configured' | 'local' | 'none';
export type Verification = 'outside' | 'no-vantage' | 'failed' | 'not-needed';

export interface ReachabilityStatus {
  path: ReachPath;
  url: string;
  verified: Verification;
  /** One line: how the path works, and how it was verified. */
  detail: string;
  /** What to do when tenants cannot reach it. */
  fix: string | null;
}

/** The relay as the resolver uses it (SshRelayTunnel; a fake in unit tests). */
export interface RelayTunnel {
  readonly publicHost: string;
  open(options: { forward: boolean; signal?: AbortSignal }): Promise<void>;
  probe(url: URL, timeoutMs: number, signal?: AbortSignal): Promise<number>;
  close(): Promise<void>;
}

export interface ReachabilityDeps {
  config: Pick<ProviderConfig, 'api' | 'reachability' | 'network'>;
  /** The port the API really listens on (api.port, or the one the kernel chose for 0). */
  apiPort: number;
  /** http today; https once the API serves TLS. */
  scheme: 'http' | 'https';
  /** The listen URL (for local and none). */
  listenUrl: string;
  interfaces: () => InterfaceTable;
  discovery: NatDiscovery;
  relay: (settings: RelaySettings) => RelayTunnel;
  clock: Clock;
  log: Logger;
  signal?: AbortSignal;
}

const PROBE_TIMEOUT_MS = 10_000;
/** What to do when no path from the internet exists: said by start-up, status and doctor alike. */
export const NAT_FIX = 'enable UPnP (or NAT-PMP) on the home router so the daemon can map its port, or name an SSH server in reachability.relay (any VPS with OpenSSH and GatewayPorts clientspecified)';

interface Candidate {
  path: ReachPath;
  url: string;
  detail: string;
  release: () => Promise<void>;
}

/**
 * Decides at start how tenants reach this provider, in the order of issue 13: a public address
 * on an interface, a port mapping on the home router, a global IPv6 address, the relay. With a
 * relay configured, each candidate is proven from outside (the relay connects back to it) before
 * it is taken; a candidate that fails the proof is undone and the next one tried. `stop()`
 * removes the mapping and closes the tunnel.
 */
export class Reachability {
  private constructor(
    readonly status: ReachabilityStatus,
    private readonly release: () => Promise<void>,
  ) {}

  static async resolve(deps: ReachabilityDeps): Promise<Reachability> {
    const { config, log } = deps;
    const settings = config.reachability;
    // On the devnet, or with the API on loopback only, tenants are on this machine: no router is asked.
    const localOnly = !config.network || isLoopbackHost(config.api.host);
    const mode = settings.mode === 'auto' && localOnly ? 'off' : settings.mode;
    if (config.api.publicUrl) {
      return new Reachability({ path: 'configured', url: config.api.publicUrl, verified: 'no-vantage', detail: 'api.publicUrl as configured; not verified from outside (no vantage point)', fix: null }, async () => undefined);
    }
    if (mode === 'off') {
      const why = settings.mode === 'off' ? 'reachability.mode is off' : config.network ? 'the API listens on loopback only' : 'the devnet\'s tenants are local';
      return new Reachability({ path: 'local', url: deps.listenUrl, verified: 'not-needed', detail: `the listen address (${why})`, fix: null }, async () => undefined);
    }

    const relaySettings = settings.relay;
    const tunnel = relaySettings ? deps.relay({ ...relaySettings }) : undefined;
    let tunnelOpen = false;
    const closeTunnel = async (): Promise<void> => {
      if (tunnelOpen) await tunnel?.close();
      tunnelOpen = false;
    };
    const attempts: string[] = [];
    try {
      const order: ReachPath[] = mode === 'auto' ? ['public', 'upnp', 'ipv6', 'relay'] : [mode];
      for (const path of order) {
        let candidate: Candidate | undefined;
        try {
          if (path === 'relay') {
            if (!tunnel || !relaySettings) {
              attempts.push('relay: none configured');
              continue;
            }
            if (tunnelOpen) await closeTunnel();
            await tunnel.open({ forward: true, signal: deps.signal });
            tunnelOpen = true;
            candidate = {
              path,
              url: urlFor(deps.scheme, tunnel.publicHost, relaySettings.remotePort),
              detail: `reverse SSH tunnel through ${relaySettings.user}@${relaySettings.host}:${relaySettings.port}`,
              release: closeTunnel,
            };
          } else {
            candidate = await Reachability.candidate(path, deps);
          }
        } catch (err) {
          if (mode !== 'auto') throw err;
          attempts.push(`${path}: ${describeError(err)}`);
          log.warn({ path, err: describeError(err) }, `reachability: ${path} failed, trying the next path`);
          continue;
        }
        if (!candidate) {
          if (mode !== 'auto') throw new Error(path === 'upnp' ? 'no UPnP-IGD or NAT-PMP gateway answered on the LAN' : `this machine has no ${path === 'ipv6' ? 'global IPv6' : 'public IPv4'} address the API listens on`);
          attempts.push(`${path}: not available`);
          continue;
        }
        if (!tunnel || !relaySettings) {
          return new Reachability({ path: candidate.path, url: candidate.url, verified: 'no-vantage', detail: `${candidate.detail}; not verified from outside (no vantage point)`, fix: null }, candidate.release);
        }
        if (!tunnelOpen) {
          try {
            await tunnel.open({ forward: false, signal: deps.signal });
            tunnelOpen = true;
          } catch (err) {
            log.warn({ err: describeError(err) }, 'the relay is unreachable, so the path cannot be verified from outside');
            return new Reachability({ path: candidate.path, url: candidate.url, verified: 'no-vantage', detail: `${candidate.detail}; not verified from outside (the relay did not answer: ${describeError(err)})`, fix: null }, candidate.release);
          }
        }
        const proof = await tunnel.probe(new URL(candidate.url), PROBE_TIMEOUT_MS, deps.signal).then(
          (status) => (status === 200 ? undefined : `GET /healthz answered ${status}`),
          (err: unknown) => describeError(err),
        );
        const release = async (): Promise<void> => {
          await candidate.release();
          await closeTunnel();
        };
        if (!proof) {
          // The vantage-only session is done; a relay candidate's session is the path itself.
          if (candidate.path !== 'relay') await closeTunnel();
          return new Reachability({ path: candidate.path, url: candidate.url, verified: 'outside', detail: `${candidate.detail}; verified from outside (the relay ${relaySettings.host} fetched ${candidate.url}/healthz)`, fix: null }, candidate.release);
        }
        log.warn({ path: candidate.path, url: candidate.url, why: proof }, 'reachability: the relay could not reach this path');
        if (mode !== 'auto' || candidate.path === 'relay') {
          return new Reachability({ path: candidate.path, url: candidate.url, verified: 'failed', detail: `${candidate.detail}; the relay could not reach ${candidate.url}: ${proof}`, fix: candidate.path === 'relay' ? 'check that the relay\'s sshd has GatewayPorts clientspecified (or yes) and that its firewall lets remotePort in' : NAT_FIX }, release);
        }
        attempts.push(`${candidate.path}: ${candidate.url} not reachable from the relay (${proof})`);
        await candidate.release();
      }
    } catch (err) {
      await closeTunnel().catch(() => undefined);
      throw new ProviderError('REACHABILITY_FAILED', `reachability.mode ${mode}: ${describeError(err)}`, { cause: err, fix: `set reachability.mode to auto, or fix what the message names` });
    }
    await closeTunnel().catch(() => undefined);
    log.warn({ tried: attempts }, 'no path from the internet to this provider: tenants elsewhere cannot reach it');
    return new Reachability({ path: 'none', url: deps.listenUrl, verified: 'failed', detail: `no path found (${attempts.join('; ')})`, fix: NAT_FIX }, async () => undefined);
  }

  private static async candidate(path: ReachPath, deps: ReachabilityDeps): Promise<Candidate | undefined> {
    const { config, apiPort, scheme } = deps;
    if (path === 'public') {
      const address = publicIPv4(deps.interfaces(), config.api.host);
      return address ? { path, url: urlFor(scheme, address, apiPort), detail: `public address ${address} on an interface`, release: async () => undefined } : undefined;
    }
    if (path === 'ipv6') {
      const address = globalIPv6(deps.interfaces(), config.api.host);
      return address ? { path, url: urlFor(scheme, address, apiPort), detail: `global IPv6 address ${address}`, release: async () => undefined } : undefined;
    }
    const upnp = config.reachability.upnp;
    const mapping = await RouterPortMapping.create(deps.discovery, { port: apiPort, ttlSeconds: upnp.ttlSeconds, timeoutMs: upnp.discoveryTimeoutMs }, { clock: deps.clock, log: deps.log, signal: deps.signal });
    if (!mapping) return undefined;
    if (!isPublicIPv4(mapping.externalHost)) {
      await mapping.remove();
      throw new ProviderError('UPNP_FAILED', `the router's external address ${mapping.externalHost} is not public (carrier-grade NAT or a second router)`, { fix: NAT_FIX });
    }
    return {
      path,
      url: urlFor(scheme, mapping.externalHost, mapping.externalPort),
      detail: `${mapping.gatewayDescription} maps ${mapping.externalHost}:${mapping.externalPort} to this machine's port ${apiPort}`,
      release: () => mapping.remove(),
    };
  }

  /** Removes the router mapping and closes the relay tunnel. */
  stop(): Promise<void> {
    return this.release();
  }
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
