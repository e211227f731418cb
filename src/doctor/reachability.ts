import type { ReachabilityView } from '../api';
import { describeError } from '../errors';
import { NAT_FIX, globalIPv6, publicIPv4, type InterfaceTable, type NatDiscovery } from '../reachability';
import { withTimeout } from '../util/with-timeout';
import { healthzOf, type CheckResult, type DoctorContext } from './checks';

export interface ReachabilityProbes {
  /** The running daemon's view (decided and proven at its start); undefined when no daemon answers. */
  daemon: () => Promise<ReachabilityView | null | undefined>;
  interfaces: () => InterfaceTable;
  discovery: NatDiscovery;
}

const ID = 'reachability';

/**
 * Which path tenants use and whether it was proven from outside: the running daemon's answer
 * when it runs; otherwise what a start would find (a public address, a gateway that maps ports, a
 * global IPv6 address, the relay), and the fix when there is nothing.
 */
export async function checkReachability(ctx: DoctorContext, probes: ReachabilityProbes): Promise<CheckResult> {
  const running = await probes.daemon().catch(() => undefined);
  if (running) return fromDaemon(running);
  const { config } = ctx;
  if (!config.network && config.reachability.mode === 'auto') return { id: ID, status: 'skip', detail: 'on the local devnet tenants are local', fix: null };
  if (/^(127\.|::1$|localhost$)/.test(config.api.host) && config.reachability.mode === 'auto') {
    return { id: ID, status: 'warn', detail: `the API listens on ${config.api.host} only: tenants on other machines cannot reach it`, fix: 'set api.host to 0.0.0.0 (or ::) so the daemon can be reached and the router asked to map its port' };
  }
  if (config.api.publicUrl) return checkConfiguredUrl(ctx, config.api.publicUrl);
  if (config.reachability.mode === 'off') return { id: ID, status: 'warn', detail: 'reachability.mode is off: tenants are told the listen address', fix: 'set reachability.mode to auto, or api.publicUrl to the URL tenants can reach' };
  const mode = config.reachability.mode;
  const relay = config.reachability.relay;
  const relayText = relay ? `the relay ${relay.user}@${relay.host}:${relay.port} (port ${relay.remotePort})` : undefined;
  const address = publicIPv4(probes.interfaces(), config.api.host);
  if ((mode === 'auto' || mode === 'public') && address) return pass(`the daemon is down; a start would use the public address ${address}`);
  if (mode === 'auto' || mode === 'upnp') {
    const gateway = await withTimeout('looking for a UPnP/NAT-PMP gateway', config.reachability.upnp.discoveryTimeoutMs, (signal) => probes.discovery.find(signal)).catch(() => undefined);
    if (gateway) {
      await gateway.close().catch(() => undefined);
      return pass(`the daemon is down; a start would map port ${config.api.port} on ${gateway.description}${relayText ? `, verified from ${relayText}` : ''}`);
    }
  }
  const v6 = globalIPv6(probes.interfaces(), config.api.host);
  if ((mode === 'auto' || mode === 'ipv6') && v6) return pass(`the daemon is down; no port-mapping gateway answered; a start would use the global IPv6 address ${v6}`);
  if ((mode === 'auto' || mode === 'relay') && relayText) return pass(`the daemon is down; no public address or port-mapping gateway here; a start would tunnel through ${relayText}`);
  return {
    id: ID,
    status: 'fail',
    detail: `behind NAT: no public address on an interface, no UPnP-IGD or NAT-PMP gateway answered within ${config.reachability.upnp.discoveryTimeoutMs} ms, no global IPv6 address, no relay configured`,
    fix: NAT_FIX,
  };
}

function fromDaemon(r: ReachabilityView): CheckResult {
  // The detail says how the path works and how (or whether) it was verified.
  const detail = `${r.path} at ${r.url}: ${r.detail}`;
  if (r.path === 'local') return { id: ID, status: 'skip', detail, fix: null };
  if (r.path === 'none' || r.verified === 'failed') return { id: ID, status: 'fail', detail, fix: r.fix ?? NAT_FIX };
  return pass(detail);
}

async function checkConfiguredUrl(ctx: DoctorContext, url: string): Promise<CheckResult> {
  const healthz = new URL('healthz', url.endsWith('/') ? url : `${url}/`).toString();
  try {
    const res = await healthzOf(ctx, url, healthz);
    if (res.ok) return pass(`configured at ${url}: ${healthz} answers (checked from this machine, not from outside)`);
    return { id: ID, status: 'warn', detail: `${healthz} answered ${res.status}`, fix: 'check that api.publicUrl leads to this daemon' };
  } catch (err) {
    return { id: ID, status: 'warn', detail: `${healthz} does not answer: ${describeError(err)}`, fix: 'start the daemon, and check port forwarding and the firewall towards api.port' };
  }
}

function pass(detail: string): CheckResult {
  return { id: ID, status: 'pass', detail, fix: null };
}
