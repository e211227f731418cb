import type Docker from 'dockerode';
import { SubnetPool, firstFreeSubnet, formatCidr, overlaps, parseCidr, parseRoutes, subnetCount, type Cidr } from '../../../src/runtime/subnet-pool';
import type { Exec } from '../../../src/util/exec';

function cidr(text: string): Cidr {
  const parsed = parseCidr(text);
  if (parsed === undefined) throw new Error(`not a cidr: ${text}`);
  return parsed;
}

const free = (pool: string, prefix: number, used: string[]): string | undefined => {
  const found = firstFreeSubnet(cidr(pool), prefix, used.map(cidr));
  return found === undefined ? undefined : formatCidr(found);
};

describe('subnet arithmetic', () => {
  test('parses a range, clearing host bits, and a bare address as a /32', () => {
    expect(formatCidr(cidr('10.77.3.9/28'))).toBe('10.77.3.0/28');
    expect(formatCidr(cidr('192.0.2.7'))).toBe('192.0.2.7/32');
    expect(formatCidr(cidr('255.255.255.255/32'))).toBe('255.255.255.255/32');
    expect(formatCidr(cidr('0.0.0.0/0'))).toBe('0.0.0.0/0');
  });

  test('refuses what is not an IPv4 range', () => {
    for (const bad of ['10.77.0.0/33', '256.1.1.1/8', '10.77/16', 'fd00::/8', '', 'default']) expect(parseCidr(bad)).toBeUndefined();
  });

  test('two ranges overlap when one contains the other, and not when they only touch', () => {
    expect(overlaps(cidr('10.77.0.0/16'), cidr('10.77.5.16/28'))).toBe(true);
    expect(overlaps(cidr('10.77.5.16/28'), cidr('10.77.0.0/16'))).toBe(true);
    expect(overlaps(cidr('10.77.0.0/28'), cidr('10.77.0.16/28'))).toBe(false);
    expect(overlaps(cidr('10.77.0.15/32'), cidr('10.77.0.0/28'))).toBe(true);
    expect(overlaps(cidr('10.77.0.16/32'), cidr('10.77.0.0/28'))).toBe(false);
  });

  test('a /16 cut into /28s holds 4096 subnets; a prefix shorter than the pool none', () => {
    expect(subnetCount(cidr('10.77.0.0/16'), 28)).toBe(4096);
    expect(subnetCount(cidr('10.77.0.0/16'), 16)).toBe(1);
    expect(subnetCount(cidr('10.77.0.0/16'), 12)).toBe(0);
  });

  test('hands out the pool in address order, skipping used subnets', () => {
    expect(free('10.77.0.0/16', 28, [])).toBe('10.77.0.0/28');
    expect(free('10.77.0.0/16', 28, ['10.77.0.0/28', '10.77.0.32/28'])).toBe('10.77.0.16/28');
    expect(free('10.77.0.0/16', 28, ['10.77.0.0/28', '10.77.0.16/28', '10.77.0.32/28'])).toBe('10.77.0.48/28');
  });

  test('a subnet that holds one used address is taken (a host route to a single address)', () => {
    expect(free('10.77.0.0/16', 28, ['10.77.0.5/32'])).toBe('10.77.0.16/28');
  });

  test('a used range wider than a subnet skips all of its subnets at once', () => {
    expect(free('10.77.0.0/16', 28, ['10.77.0.0/17'])).toBe('10.77.128.0/28');
    expect(free('10.77.0.0/16', 28, ['10.0.0.0/8'])).toBeUndefined();
  });

  test('ranges outside the pool are no obstacle', () => {
    expect(free('10.77.0.0/16', 28, ['172.17.0.0/16', '10.76.0.0/16', '10.78.0.0/16'])).toBe('10.77.0.0/28');
  });

  test('an exhausted pool gives nothing', () => {
    const all = Array.from({ length: 16 }, (_, i) => `10.77.0.${i * 16}/28`);
    expect(free('10.77.0.0/24', 28, all)).toBeUndefined();
    expect(free('10.77.0.0/24', 28, all.slice(1))).toBe('10.77.0.0/28');
  });

  test('a subnet as large as the pool is the pool', () => {
    expect(free('10.77.0.0/24', 24, [])).toBe('10.77.0.0/24');
    expect(free('10.77.0.0/24', 24, ['10.77.0.200/32'])).toBeUndefined();
  });

  test('reads every route of every table, and the default route blocks nothing', () => {
    const output = [
      'default via 192.0.2.1 dev eth0 ',
      '10.77.0.0/28 dev pvl0123456789ab proto kernel scope link src 10.77.0.1 linkdown ',
      '172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 ',
      '10.77.9.0/24 dev tailscale0 table 52 ',
      'unreachable 10.77.64.0/18 ',
      'local 10.77.0.1 dev pvl0123456789ab table local proto kernel scope host src 10.77.0.1 ',
      'broadcast 10.77.0.15 dev pvl0123456789ab table local proto kernel scope link src 10.77.0.1 linkdown ',
      '',
    ].join('\n');
    expect(parseRoutes(output).map(formatCidr)).toEqual(['10.77.0.0/28', '172.17.0.0/16', '10.77.9.0/24', '10.77.64.0/18', '10.77.0.1/32', '10.77.0.15/32']);
  });
});

describe('subnet pool', () => {
  function aPool(networks: object[], routes = '', settings = { pool: '10.77.0.0/24', prefix: 28 }): SubnetPool {
    const docker = { listNetworks: async () => networks } as unknown as Docker;
    const exec: Exec = async () => ({ stdout: routes, stderr: '' });
    return new SubnetPool({ docker, exec, settings });
  }
  const bounds = { timeoutMs: 1000 };

  test("skips every Docker network's subnet and every host route", async () => {
    const pool = aPool([{ IPAM: { Config: [{ Subnet: '10.77.0.0/28' }] } }, { IPAM: { Config: [] } }, { IPAM: null }], '10.77.0.16/28 dev wg0 \n');
    expect(await pool.pick(bounds)).toBe('10.77.0.32/28');
  });

  test('two picks in flight never hand out one subnet; a released one is handed out again', async () => {
    const pool = aPool([]);
    const [a, b] = await Promise.all([pool.pick(bounds), pool.pick(bounds)]);
    expect(new Set([a, b]).size).toBe(2);
    pool.release(a);
    expect(await pool.pick(bounds)).toBe(a);
  });

  test('skips subnets a create just lost to another daemon', async () => {
    expect(await aPool([]).pick(bounds, ['10.77.0.0/28'])).toBe('10.77.0.16/28');
  });

  test('an exhausted pool fails with SUBNET_POOL_EXHAUSTED and says what to change', async () => {
    const pool = aPool([], '10.77.0.0/25 dev eth1 \n10.77.0.128/25 dev eth2 \n');
    await expect(pool.pick(bounds)).rejects.toMatchObject({
      code: 'SUBNET_POOL_EXHAUSTED',
      message: expect.stringContaining('10.77.0.0/24'),
      fix: expect.stringContaining('runtime.network.subnetPool'),
    });
  });

  test('a pool with host bits set is a config error, not a silent shift', () => {
    expect(() => aPool([], '', { pool: '10.77.1.0/16', prefix: 28 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});
