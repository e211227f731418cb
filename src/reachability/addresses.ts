import { isIPv4, isIPv6 } from 'node:net';
import type { NetworkInterfaceInfo } from 'node:os';

/** What os.networkInterfaces() returns; injected so tests name the interfaces. */
export type InterfaceTable = NodeJS.Dict<NetworkInterfaceInfo[]>;

/** IPv4 ranges that a tenant on the internet cannot reach: private, CGNAT, loopback, link-local, reserved. */
const NOT_PUBLIC_V4: readonly [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 3],
];

function v4ToInt(address: string): number {
  return address.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

export function isPublicIPv4(address: string): boolean {
  if (!isIPv4(address)) return false;
  const n = v4ToInt(address);
  return !NOT_PUBLIC_V4.some(([base, bits]) => Math.floor(n / 2 ** (32 - bits)) === Math.floor(v4ToInt(base) / 2 ** (32 - bits)));
}

/** Global unicast (2000::/3) and not documentation (2001:db8::/32); ULA, link-local and mapped addresses are not. */
export function isGlobalIPv6(address: string): boolean {
  if (!isIPv6(address)) return false;
  const first = parseInt(address.split(':')[0] || '0', 16);
  if ((first & 0xe000) !== 0x2000) return false;
  return !/^2001:0?db8:/i.test(address);
}

/** The addresses of this machine the API listens on (`api.host`): all of them for 0.0.0.0 / ::, else that one. */
function listened(table: InterfaceTable, apiHost: string, family: 'IPv4' | 'IPv6'): string[] {
  const all = Object.values(table)
    .flatMap((list) => list ?? [])
    .filter((info) => info.family === family && !info.internal)
    .map((info) => info.address);
  if (apiHost === '0.0.0.0') return family === 'IPv4' ? all : [];
  // Node's `::` listens on IPv4 too (dual stack).
  if (apiHost === '::') return all;
  return all.filter((address) => address === apiHost);
}

export function publicIPv4(table: InterfaceTable, apiHost: string): string | undefined {
  return listened(table, apiHost, 'IPv4').find(isPublicIPv4);
}

export function globalIPv6(table: InterfaceTable, apiHost: string): string | undefined {
  return listened(table, apiHost, 'IPv6').find(isGlobalIPv6);
}

/** An http(s) URL for a host that may be an IPv6 literal. */
export function urlFor(scheme: 'http' | 'https', host: string, port: number): string {
  return `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
}
