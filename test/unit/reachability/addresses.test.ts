import { globalIPv6, isGlobalIPv6, isPublicIPv4, publicIPv4, urlFor, type InterfaceTable } from '../../../src/reachability';
import { defaultGateway, fingerprint, hostKeyMatches } from '../../../src/reachability';

const v4 = (address: string) => ({ address, family: 'IPv4' as const, internal: false, netmask: '', mac: '', cidr: null });
const v6 = (address: string) => ({ address, family: 'IPv6' as const, internal: false, netmask: '', mac: '', cidr: null, scopeid: 0 });

describe('public and global addresses', () => {
  it.each([
    ['10.1.2.3', false],
    ['172.20.0.1', false],
    ['192.168.1.10', false],
    ['100.64.0.1', false],
    ['100.127.255.254', false],
    ['127.0.0.1', false],
    ['169.254.3.4', false],
    ['203.0.113.7', false],
    ['224.0.0.1', false],
    ['100.128.0.1', true],
    ['11.0.0.1', true],
    ['85.10.20.30', true],
  ])('%s is public: %s', (address, expected) => {
    expect(isPublicIPv4(address)).toBe(expected);
  });

  it.each([
    ['2a01:4f8::1', true],
    ['fd00::1', false],
    ['fe80::1', false],
    ['::1', false],
    ['2001:db8::1', false],
  ])('%s is global IPv6: %s', (address, expected) => {
    expect(isGlobalIPv6(address)).toBe(expected);
  });

  it('finds the public IPv4 of an interface the API listens on, and none for a home LAN', () => {
    const home: InterfaceTable = { eth0: [v4('192.168.1.20'), v6('fe80::1')] };
    const server: InterfaceTable = { eth0: [v4('10.0.0.2')], eth1: [v4('85.10.20.30')] };
    expect(publicIPv4(home, '0.0.0.0')).toBeUndefined();
    expect(publicIPv4(server, '0.0.0.0')).toBe('85.10.20.30');
    // An API bound to one address is reachable only there.
    expect(publicIPv4(server, '10.0.0.2')).toBeUndefined();
  });

  it('offers a global IPv6 address only when the API listens on IPv6', () => {
    const table: InterfaceTable = { eth0: [v4('192.168.1.20'), v6('2a01:4f8::20')] };
    expect(globalIPv6(table, '0.0.0.0')).toBeUndefined();
    expect(globalIPv6(table, '::')).toBe('2a01:4f8::20');
    expect(urlFor('http', '2a01:4f8::20', 8420)).toBe('http://[2a01:4f8::20]:8420');
  });

  it('reads the default gateway from /proc/net/route', async () => {
    const table = 'Iface\tDestination\tGateway\tFlags\nhome0\t004DA8C0\t00000000\t0001\nhome0\t00000000\t014DA8C0\t0003\n';
    expect(await defaultGateway(async () => table)).toBe('192.168.77.1');
    expect(await defaultGateway(async () => 'Iface\tDestination\tGateway\n')).toBeUndefined();
  });
});

describe('the relay host key pin', () => {
  const key = Buffer.concat([Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAI', 'base64'), Buffer.alloc(32, 1)]);
  it('accepts the pinned key as a known_hosts line or a SHA256 fingerprint, and refuses another', () => {
    const line = `ssh-ed25519 ${key.toString('base64')}`;
    expect(hostKeyMatches(key, line)).toBe(true);
    expect(hostKeyMatches(key, `[relay]:2222 ${line}`)).toBe(true);
    expect(hostKeyMatches(key, fingerprint(key))).toBe(true);
    const other = Buffer.concat([Buffer.from('AAAAC3NzaC1lZDI1NTE5AAAAI', 'base64'), Buffer.alloc(32, 2)]);
    expect(hostKeyMatches(other, line)).toBe(false);
    expect(hostKeyMatches(other, fingerprint(key))).toBe(false);
  });
});
