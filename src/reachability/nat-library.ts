import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import type { NatDiscovery, NatGateway } from './port-mapping';

/** The part of @achingbrain/nat-port-mapper used here (the package is ESM only: loaded with import()). */
interface LibraryGateway {
  host: string;
  family: 'IPv4' | 'IPv6';
  map(internalPort: number, internalHost: string, options: { externalPort: number; ttl: number; autoRefresh: boolean; description: string; protocol: 'TCP'; signal: AbortSignal }): Promise<{ externalHost: string; externalPort: number }>;
  unmap(internalPort: number, options: { signal: AbortSignal }): Promise<void>;
  externalIp(options: { signal: AbortSignal }): Promise<string>;
  stop(options?: { signal?: AbortSignal }): Promise<void>;
}

interface Library {
  upnpNat(options: { autoRefresh: boolean }): { findGateways(options: { signal: AbortSignal }): AsyncGenerator<LibraryGateway> };
  pmpNat(ipAddress: string, options: { autoRefresh: boolean }): LibraryGateway;
}

const DESCRIPTION = 'provider API';

/**
 * The real gateways through @achingbrain/nat-port-mapper: UPnP-IGD found by SSDP on the LAN, else
 * NAT-PMP (PCP's predecessor, which miniupnpd and most home routers also speak) at the default
 * gateway. The library's own refresh is off: RouterPortMapping renews on its clock.
 */
export class NatLibraryDiscovery implements NatDiscovery {
  constructor(private readonly load: () => Promise<Library> = () => import('@achingbrain/nat-port-mapper') as unknown as Promise<Library>) {}

  async find(signal: AbortSignal): Promise<NatGateway | undefined> {
    const lib = await this.load();
    // SSDP answers come within a second or two on a LAN; the rest of the time is NAT-PMP's.
    const upnpSignal = AbortSignal.any([signal, AbortSignal.timeout(3_000)]);
    try {
      for await (const gateway of lib.upnpNat({ autoRefresh: false }).findGateways({ signal: upnpSignal })) {
        if (gateway.family !== 'IPv4') continue;
        return adapt(gateway, 'upnp', `UPnP-IGD at ${gateway.host}`, await localAddressTowards(gateway.host));
      }
    } catch (err) {
      if (signal.aborted) throw err;
    }
    const router = await defaultGateway();
    if (!router) return undefined;
    const pmp = lib.pmpNat(router, { autoRefresh: false });
    try {
      await pmp.externalIp({ signal });
    } catch {
      await pmp.stop().catch(() => undefined);
      return undefined;
    }
    return adapt(pmp, 'nat-pmp', `NAT-PMP at ${router}`, await localAddressTowards(router));
  }
}

function adapt(gateway: LibraryGateway, kind: NatGateway['kind'], description: string, localAddress: string): NatGateway {
  return {
    kind,
    description,
    localAddress,
    map: (internalPort, internalHost, { externalPort, ttlSeconds, signal }) =>
      gateway.map(internalPort, internalHost, { externalPort, ttl: ttlSeconds, autoRefresh: false, description: DESCRIPTION, protocol: 'TCP', signal }),
    unmap: (internalPort, signal) => gateway.unmap(internalPort, { signal }),
    close: () => gateway.stop(),
  };
}

/** The source address the kernel picks towards `host` (a connected UDP socket sends nothing). */
async function localAddressTowards(host: string): Promise<string> {
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(9, host, () => resolve());
    });
    return socket.address().address;
  } finally {
    socket.close();
  }
}

/** The IPv4 default route's gateway, from /proc/net/route (little-endian hex). */
export async function defaultGateway(read: (path: string) => Promise<string> = (p) => readFile(p, 'utf8')): Promise<string | undefined> {
  const text = await read('/proc/net/route').catch(() => '');
  for (const line of text.split('\n').slice(1)) {
    const [, destination, gateway] = line.trim().split(/\s+/);
    if (destination !== '00000000' || !gateway || gateway === '00000000') continue;
    const n = parseInt(gateway, 16);
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.');
  }
  return undefined;
}
