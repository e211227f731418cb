import { readFileSync } from 'node:fs';
import { Firewall, bridgeName } from '../../../src/runtime';
import { silentLogger } from '../../../src/log';
import { ExecError, type Exec } from '../../../src/util/exec';

interface Call {
  file: string;
  args: string[];
  script?: string;
}

function fakeIptables(listing: Record<string, string> = {}): { exec: Exec; calls: Call[] } {
  const calls: Call[] = [];
  const exec: Exec = async (file, args) => {
    const call: Call = { file, args: [...args] };
    if (file.endsWith('-restore')) call.script = readFileSync(args[args.length - 1] as string, 'utf8');
    calls.push(call);
    if (args.includes('-S')) return { stdout: listing[file] ?? '', stderr: '' };
    return { stdout: '', stderr: '' };
  };
  return { exec, calls };
}

const bridge = bridgeName('lease-7');

describe('lease firewall', () => {
  test('installs the forward and input chains of a lease in one iptables-restore per family', async () => {
    const { exec, calls } = fakeIptables();
    await new Firewall(exec, silentLogger()).apply({ leaseId: 'lease-7', bridge, publicEgress: true, allowCidrs: [] });
    expect(calls.map((c) => c.file).sort()).toEqual(['ip6tables-restore', 'iptables-restore']);
    const v4 = calls.find((c) => c.file === 'iptables-restore');
    expect(v4?.args.slice(0, 3)).toEqual(['-w', '5', '--noflush']);
    const lines = (v4?.script ?? '').split('\n');
    const c = '-m comment --comment "provider-lease:lease-7"';
    expect(lines).toEqual([
      '*filter',
      expect.stringMatching(/^:PROVIDER-F-[0-9a-f]{12} - \[0:0\]$/),
      expect.stringMatching(/^:PROVIDER-I-[0-9a-f]{12} - \[0:0\]$/),
      expect.stringMatching(/^-A PROVIDER-F-\w+ -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN /),
      expect.stringContaining('-d 10.0.0.0/8 -j DROP'),
      expect.stringContaining('-d 172.16.0.0/12 -j DROP'),
      expect.stringContaining('-d 192.168.0.0/16 -j DROP'),
      expect.stringContaining('-d 100.64.0.0/10 -j DROP'),
      expect.stringContaining('-d 169.254.0.0/16 -j DROP'),
      expect.stringContaining('-d 127.0.0.0/8 -j DROP'),
      expect.stringMatching(/^-A PROVIDER-F-\w+ -j RETURN /),
      expect.stringMatching(/^-A PROVIDER-I-\w+ -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT /),
      expect.stringMatching(/^-A PROVIDER-I-\w+ -j DROP /),
      `-I DOCKER-USER 1 -i ${bridge} -j PROVIDER-F-${lines[1]?.slice(12, 24)} ${c}`,
      expect.stringMatching(new RegExp(`^-I INPUT 1 -i ${bridge} -j PROVIDER-I-\\w+ `)),
      'COMMIT',
      '',
    ]);
    for (const line of lines.filter((l) => l.startsWith('-'))) expect(line).toContain(c);
  });

  test('drops IPv6 ULA and link-local, hooked on FORWARD since Docker leaves ip6tables alone', async () => {
    const { exec, calls } = fakeIptables();
    await new Firewall(exec, silentLogger()).apply({ leaseId: 'lease-7', bridge, publicEgress: true, allowCidrs: [] });
    const v6 = calls.find((c) => c.file === 'ip6tables-restore')?.script ?? '';
    expect(v6).toContain('-d fc00::/7 -j DROP');
    expect(v6).toContain('-d fe80::/10 -j DROP');
    expect(v6).toMatch(new RegExp(`-I FORWARD 1 -i ${bridge} -j PROVIDER-F-`));
    expect(v6).not.toContain('10.0.0.0/8');
  });

  test('opens allow-listed ranges before the private-range drops', async () => {
    const { exec, calls } = fakeIptables();
    await new Firewall(exec, silentLogger()).apply({ leaseId: 'lease-7', bridge, publicEgress: true, allowCidrs: ['10.1.2.0/24', 'fd00:1::/64'] });
    const v4 = calls.find((c) => c.file === 'iptables-restore')?.script ?? '';
    expect(v4.indexOf('-d 10.1.2.0/24 -j RETURN')).toBeGreaterThan(0);
    expect(v4.indexOf('-d 10.1.2.0/24 -j RETURN')).toBeLessThan(v4.indexOf('-d 10.0.0.0/8 -j DROP'));
    expect(v4).not.toContain('fd00:1::/64');
    expect(calls.find((c) => c.file === 'ip6tables-restore')?.script).toContain('-d fd00:1::/64 -j RETURN');
  });

  test('opens only port 53 to the lease resolvers, in both chains, before any drop', async () => {
    const { exec, calls } = fakeIptables();
    await new Firewall(exec, silentLogger(), { ipv6: false }).apply({ leaseId: 'lease-7', bridge, publicEgress: true, allowCidrs: [], dnsServers: ['192.168.1.1'] });
    const v4 = calls.find((c) => c.file === 'iptables-restore')?.script ?? '';
    for (const proto of ['udp', 'tcp']) {
      expect(v4).toMatch(new RegExp(`-A PROVIDER-F-\\w+ -d 192\\.168\\.1\\.1 -p ${proto} --dport 53 -j RETURN`));
      expect(v4).toMatch(new RegExp(`-A PROVIDER-I-\\w+ -d 192\\.168\\.1\\.1 -p ${proto} --dport 53 -j ACCEPT`));
    }
    expect(v4.indexOf('--dport 53 -j RETURN')).toBeLessThan(v4.indexOf('-d 192.168.0.0/16 -j DROP'));
    expect(v4.indexOf('--dport 53 -j ACCEPT')).toBeLessThan(v4.lastIndexOf('-j DROP'));
  });

  test('drops all new egress when public egress is off', async () => {
    const { exec, calls } = fakeIptables();
    await new Firewall(exec, silentLogger()).apply({ leaseId: 'lease-7', bridge, publicEgress: false, allowCidrs: [] });
    const v4 = calls.find((c) => c.file === 'iptables-restore')?.script ?? '';
    expect(v4).toMatch(/-A PROVIDER-F-\w+ -j DROP -m comment/);
    expect(v4).not.toMatch(/-A PROVIDER-F-\w+ -j RETURN -m comment/);
  });

  test('removes the jumps and then the chains of a lease', async () => {
    const listing = [
      '-P INPUT ACCEPT',
      '-N DOCKER-USER',
      '-N PROVIDER-F-aaaaaaaaaaaa',
      '-N PROVIDER-I-aaaaaaaaaaaa',
      '-A INPUT -i pvlx -m comment --comment "provider-lease:old" -j PROVIDER-I-aaaaaaaaaaaa',
      '-A DOCKER-USER -i pvlx -m comment --comment "provider-lease:old" -j PROVIDER-F-aaaaaaaaaaaa',
      '-A DOCKER-USER -j RETURN',
      '-A PROVIDER-F-aaaaaaaaaaaa -j RETURN',
    ].join('\n');
    const { exec, calls } = fakeIptables({ iptables: listing });
    const removed = await new Firewall(exec, silentLogger(), { ipv6: false }).removeStale([]);
    expect(removed).toEqual(['iptables:PROVIDER-F-aaaaaaaaaaaa', 'iptables:PROVIDER-I-aaaaaaaaaaaa']);
    expect(calls.find((c) => c.file === 'iptables-restore')?.script).toBe(
      [
        '*filter',
        '-D INPUT -i pvlx -m comment --comment "provider-lease:old" -j PROVIDER-I-aaaaaaaaaaaa',
        '-D DOCKER-USER -i pvlx -m comment --comment "provider-lease:old" -j PROVIDER-F-aaaaaaaaaaaa',
        '-F PROVIDER-F-aaaaaaaaaaaa',
        '-F PROVIDER-I-aaaaaaaaaaaa',
        '-X PROVIDER-F-aaaaaaaaaaaa',
        '-X PROVIDER-I-aaaaaaaaaaaa',
        'COMMIT',
        '',
      ].join('\n'),
    );
  });

  test('keeps the rules of leases that still exist when cleaning stale ones', async () => {
    const { exec } = fakeIptables({ iptables: '' });
    const fw = new Firewall(exec, silentLogger(), { ipv6: false });
    expect(await fw.removeStale(['lease-7'])).toEqual([]);
  });

  test('removing rules that are not there changes nothing', async () => {
    const { exec, calls } = fakeIptables({ iptables: '-P INPUT ACCEPT\n' });
    await new Firewall(exec, silentLogger(), { ipv6: false }).remove('lease-7');
    expect(calls.filter((c) => c.file.endsWith('-restore'))).toEqual([]);
  });

  test('fails with FIREWALL_FAILED when iptables refuses the rules', async () => {
    const exec: Exec = async (file) => {
      throw new ExecError(`${file}: exited with code 1`, file, 'exit', 1, 'iptables-restore: line 4 failed');
    };
    await expect(new Firewall(exec, silentLogger(), { ipv6: false }).apply({ leaseId: 'lease-7', bridge, publicEgress: true, allowCidrs: [] })).rejects.toMatchObject({
      code: 'FIREWALL_FAILED',
    });
  });

  test('skips IPv6 when ip6tables is not installed', async () => {
    const calls: string[] = [];
    const exec: Exec = async (file) => {
      calls.push(file);
      if (file.startsWith('ip6')) throw new ExecError(`${file}: not found`, file, 'not-found', null, '');
      return { stdout: '', stderr: '' };
    };
    const fw = new Firewall(exec, silentLogger());
    await fw.apply({ leaseId: 'lease-7', bridge, publicEgress: true, allowCidrs: [] });
    await fw.apply({ leaseId: 'lease-8', bridge, publicEgress: true, allowCidrs: [] });
    expect(calls.filter((f) => f.startsWith('ip6'))).toHaveLength(1);
  });
});
