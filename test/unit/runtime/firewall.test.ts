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
      expect.stringMatching(/^:PV-local-F-[0-9a-f]{12} - \[0:0\]$/),
      expect.stringMatching(/^:PV-local-I-[0-9a-f]{12} - \[0:0\]$/),
      expect.stringMatching(/^-A PV-local-F-\w+ -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN /),
      expect.stringContaining('-d 10.0.0.0/8 -j DROP'),
      expect.stringContaining('-d 172.16.0.0/12 -j DROP'),
      expect.stringContaining('-d 192.168.0.0/16 -j DROP'),
      expect.stringContaining('-d 100.64.0.0/10 -j DROP'),
      expect.stringContaining('-d 169.254.0.0/16 -j DROP'),
      expect.stringContaining('-d 127.0.0.0/8 -j DROP'),
      expect.stringMatching(/^-A PV-local-F-\w+ -j RETURN /),
      expect.stringMatching(/^-A PV-local-I-\w+ -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT /),
      expect.stringMatching(/^-A PV-local-I-\w+ -j DROP /),
      `-I DOCKER-USER 1 -i ${bridge} -j PV-local-F-${lines[1]?.slice(12, 24)} ${c}`,
      expect.stringMatching(new RegExp(`^-I INPUT 1 -i ${bridge} -j PV-local-I-\\w+ `)),
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
    expect(v6).toMatch(new RegExp(`-I FORWARD 1 -i ${bridge} -j PV-local-F-`));
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
      expect(v4).toMatch(new RegExp(`-A PV-local-F-\\w+ -d 192\\.168\\.1\\.1 -p ${proto} --dport 53 -j RETURN`));
      expect(v4).toMatch(new RegExp(`-A PV-local-I-\\w+ -d 192\\.168\\.1\\.1 -p ${proto} --dport 53 -j ACCEPT`));
    }
    expect(v4.indexOf('--dport 53 -j RETURN')).toBeLessThan(v4.indexOf('-d 192.168.0.0/16 -j DROP'));
    expect(v4.indexOf('--dport 53 -j ACCEPT')).toBeLessThan(v4.lastIndexOf('-j DROP'));
  });

  test('drops all new egress when public egress is off', async () => {
    const { exec, calls } = fakeIptables();
    await new Firewall(exec, silentLogger()).apply({ leaseId: 'lease-7', bridge, publicEgress: false, allowCidrs: [] });
    const v4 = calls.find((c) => c.file === 'iptables-restore')?.script ?? '';
    expect(v4).toMatch(/-A PV-local-F-\w+ -j DROP -m comment/);
    expect(v4).not.toMatch(/-A PV-local-F-\w+ -j RETURN -m comment/);
  });

  test('removes the jumps and then the chains of a lease', async () => {
    const listing = [
      '-P INPUT ACCEPT',
      '-N DOCKER-USER',
      '-N PV-local-F-aaaaaaaaaaaa',
      '-N PV-local-I-aaaaaaaaaaaa',
      '-A INPUT -i pvlx -m comment --comment "provider-lease:old" -j PV-local-I-aaaaaaaaaaaa',
      '-A DOCKER-USER -i pvlx -m comment --comment "provider-lease:old" -j PV-local-F-aaaaaaaaaaaa',
      '-A DOCKER-USER -j RETURN',
      '-A PV-local-F-aaaaaaaaaaaa -j RETURN',
    ].join('\n');
    const { exec, calls } = fakeIptables({ iptables: listing });
    const removed = await new Firewall(exec, silentLogger(), { ipv6: false }).removeStale([]);
    expect(removed).toEqual(['iptables:PV-local-F-aaaaaaaaaaaa', 'iptables:PV-local-I-aaaaaaaaaaaa']);
    expect(calls.find((c) => c.file === 'iptables-restore')?.script).toBe(
      [
        '*filter',
        '-D INPUT -i pvlx -m comment --comment "provider-lease:old" -j PV-local-I-aaaaaaaaaaaa',
        '-D DOCKER-USER -i pvlx -m comment --comment "provider-lease:old" -j PV-local-F-aaaaaaaaaaaa',
        '-F PV-local-F-aaaaaaaaaaaa',
        '-F PV-local-I-aaaaaaaaaaaa',
        '-X PV-local-F-aaaaaaaaaaaa',
        '-X PV-local-I-aaaaaaaaaaaa',
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

  test("cleaning stale rules leaves another instance's chains and legacy ones alone", async () => {
    const listing = [
      '-N DOCKER-USER',
      '-N PV-other-F-aaaaaaaaaaaa',
      '-N PV-local-F-bbbbbbbbbbbb',
      '-N PROVIDER-F-cccccccccccc',
      '-A DOCKER-USER -i pvla -m comment --comment "provider-lease:theirs" -j PV-other-F-aaaaaaaaaaaa',
      '-A DOCKER-USER -i pvlb -m comment --comment "provider-lease:ours" -j PV-local-F-bbbbbbbbbbbb',
    ].join('\n');
    const { exec, calls } = fakeIptables({ iptables: listing });
    const removed = await new Firewall(exec, silentLogger(), { ipv6: false }).removeStale([]);
    expect(removed).toEqual(['iptables:PV-local-F-bbbbbbbbbbbb']);
    const script = calls.find((c) => c.file === 'iptables-restore')?.script ?? '';
    expect(script).not.toContain('PV-other');
    expect(script).not.toContain('PROVIDER-F');
  });

  test('refuses an instance id that cannot be part of a chain name', () => {
    expect(() => new Firewall(fakeIptables().exec, silentLogger(), { instanceId: 'Not-OK' })).toThrow(expect.objectContaining({ code: 'ALLOCATION_INVALID' }));
  });
});

describe('lease firewall check', () => {
  /** A fake iptables whose listing is what the scripts it was given built (enough to count rules). */
  function statefulIptables(): { exec: Exec; rules: string[]; restores: () => number } {
    const rules: string[] = ['-P FORWARD DROP', '-N DOCKER-USER', '-A FORWARD -j DOCKER-USER', '-A FORWARD -j DOCKER-ISOLATION-STAGE-1', '-A DOCKER-USER -j RETURN'];
    let restores = 0;
    const exec: Exec = async (file, args) => {
      if (file === 'iptables' && args.includes('-S')) return { stdout: `${rules.join('\n')}\n`, stderr: '' };
      if (file === 'iptables-restore') {
        restores += 1;
        for (const line of readFileSync(args[args.length - 1] as string, 'utf8').split('\n')) {
          let m: RegExpExecArray | null;
          if ((m = /^:(\S+) /.exec(line))) {
            if (!rules.includes(`-N ${m[1]}`)) rules.push(`-N ${m[1]}`);
            else for (let i = rules.length - 1; i >= 0; i--) if (rules[i]?.startsWith(`-A ${m[1]} `)) rules.splice(i, 1);
          } else if ((m = /^-I (\S+) 1 (.*)$/.exec(line))) {
            const first = rules.findIndex((r) => r.startsWith(`-A ${m?.[1]} `));
            rules.splice(first < 0 ? rules.length : first, 0, `-A ${m[1]} ${m[2]}`);
          } else if (line.startsWith('-A ')) rules.push(line);
          else if (line.startsWith('-D ')) rules.splice(rules.indexOf(`-A ${line.slice(3)}`), 1);
          else if (line.startsWith('-F ')) for (let i = rules.length - 1; i >= 0; i--) if (rules[i]?.startsWith(`-A ${line.slice(3)} `)) rules.splice(i, 1);
          else if (line.startsWith('-X ')) rules.splice(rules.indexOf(`-N ${line.slice(3)}`), 1);
        }
        return { stdout: '', stderr: '' };
      }
      return { stdout: '', stderr: '' };
    };
    return { exec, rules, restores: () => restores };
  }
  const spec = { leaseId: 'lease-7', bridge, publicEgress: true, allowCidrs: [] };

  test('restores nothing while the rules are intact', async () => {
    const ipt = statefulIptables();
    const fw = new Firewall(ipt.exec, silentLogger(), { ipv6: false });
    await fw.apply(spec);
    const before = ipt.restores();
    expect(await fw.verify()).toEqual([]);
    expect(ipt.restores()).toBe(before);
  });

  test('restores a lease chain another tool flushed, to the same rules', async () => {
    const ipt = statefulIptables();
    const fw = new Firewall(ipt.exec, silentLogger(), { ipv6: false });
    await fw.apply(spec);
    const installed = [...ipt.rules];
    const { forward } = fw.chainsOf('lease-7');
    for (let i = ipt.rules.length - 1; i >= 0; i--) if (ipt.rules[i]?.startsWith(`-A ${forward} `)) ipt.rules.splice(i, 1);
    expect(await fw.verify()).toEqual(['lease-7']);
    expect([...ipt.rules].sort()).toEqual([...installed].sort());
    expect(await fw.verify()).toEqual([]);
  });

  test('restores a deleted jump into a lease chain', async () => {
    const ipt = statefulIptables();
    const fw = new Firewall(ipt.exec, silentLogger(), { ipv6: false });
    await fw.apply(spec);
    ipt.rules.splice(ipt.rules.findIndex((r) => r.startsWith('-A INPUT ')), 1);
    expect(await fw.verify()).toEqual(['lease-7']);
    expect(ipt.rules.filter((r) => r.startsWith('-A INPUT ') && r.includes(fw.chainsOf('lease-7').input))).toHaveLength(1);
  });

  test("puts Docker's FORWARD hook to DOCKER-USER back first when FORWARD was flushed", async () => {
    const ipt = statefulIptables();
    const fw = new Firewall(ipt.exec, silentLogger(), { ipv6: false });
    await fw.apply(spec);
    for (let i = ipt.rules.length - 1; i >= 0; i--) if (ipt.rules[i]?.startsWith('-A FORWARD ')) ipt.rules.splice(i, 1);
    expect(await fw.verify()).toEqual(['hook:v4']);
    expect(ipt.rules.filter((r) => r.startsWith('-A FORWARD '))).toEqual(['-A FORWARD -j DOCKER-USER']);
  });

  test("leaves Docker's hook alone when it is only being moved: a network create lists it second for a moment", async () => {
    const ipt = statefulIptables();
    const fw = new Firewall(ipt.exec, silentLogger(), { ipv6: false });
    await fw.apply(spec);
    // What dockerd's network create leaves for a moment: its bridge rule on top, the hook second.
    ipt.rules.splice(ipt.rules.indexOf('-A FORWARD -j DOCKER-USER'), 0, '-A FORWARD -o br-new -j DOCKER');
    const before = ipt.restores();
    const dockerdFinishes = async (): Promise<void> => {
      ipt.rules.splice(ipt.rules.indexOf('-A FORWARD -j DOCKER-USER'), 1);
      ipt.rules.splice(ipt.rules.findIndex((r) => r.startsWith('-A FORWARD ')), 0, '-A FORWARD -j DOCKER-USER');
    };
    expect(await fw.verify(dockerdFinishes)).toEqual([]);
    expect(ipt.restores()).toBe(before);
    expect(ipt.rules.filter((r) => r === '-A FORWARD -j DOCKER-USER')).toHaveLength(1);
  });

  test('restores the hook when it is still out of place after the settle', async () => {
    const ipt = statefulIptables();
    const fw = new Firewall(ipt.exec, silentLogger(), { ipv6: false });
    await fw.apply(spec);
    for (let i = ipt.rules.length - 1; i >= 0; i--) if (ipt.rules[i]?.startsWith('-A FORWARD ')) ipt.rules.splice(i, 1);
    let settled = 0;
    expect(await fw.verify(async () => void (settled += 1))).toEqual(['hook:v4']);
    expect(settled).toBe(1);
    expect(ipt.rules.filter((r) => r.startsWith('-A FORWARD '))).toEqual(['-A FORWARD -j DOCKER-USER']);
  });

  test('forgets the rules of a removed lease: nothing is restored for it', async () => {
    const ipt = statefulIptables();
    const fw = new Firewall(ipt.exec, silentLogger(), { ipv6: false });
    await fw.apply(spec);
    await fw.remove('lease-7');
    expect(await fw.verify()).toEqual([]);
    expect(ipt.rules.some((r) => r.includes('lease-7'))).toBe(false);
  });
});
