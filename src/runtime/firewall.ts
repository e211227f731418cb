import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log';
import { ProviderError, describeError } from '../errors';
import { ExecError, type Exec } from '../util/exec';
import { leaseChains } from './names';

/**
 * Address ranges a lease may not reach unless the operator allows them: RFC 1918, carrier-grade
 * NAT, link-local (cloud metadata at 169.254.169.254), loopback, and IPv6 ULA / link-local.
 */
export const BLOCKED_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '127.0.0.0/8'] as const;
export const BLOCKED_V6 = ['fc00::/7', 'fe80::/10', '::1/128'] as const;

export interface LeaseFirewallSpec {
  leaseId: string;
  /** The Linux bridge of the lease's network. */
  bridge: string;
  /** Public egress; false leaves only replies to connections made to the lease's published ports. */
  publicEgress: boolean;
  /** Ranges opened despite BLOCKED_* (runtime.egress.allowCidrs). */
  allowCidrs: readonly string[];
  /**
   * Resolvers the engine's embedded DNS forwards to. Docker dials them from inside the lease's
   * network namespace, so a home router's 192.168.x.1 would be dropped like any LAN host: port 53
   * (and only port 53) to these stays open.
   */
  dnsServers?: readonly string[];
}

export type Family = 'v4' | 'v6';
const TOOL: Record<Family, string> = { v4: 'iptables', v6: 'ip6tables' };
const COMMENT_PREFIX = 'provider-lease:';

/**
 * The rules that keep a lease on the public internet, all through iptables (injected Exec).
 *
 * Layout per lease L with bridge B, for iptables and ip6tables:
 *   filter/DOCKER-USER: -i B -j PROVIDER-F-<h>   (traffic the lease sends to other hosts; ip6tables
 *                       uses FORWARD, since Docker 20.10 leaves ip6tables alone by default)
 *   filter/INPUT:       -i B -j PROVIDER-I-<h>   (traffic the lease sends to this host itself)
 *   PROVIDER-F-<h>: ESTABLISHED,RELATED RETURN (replies to clients of published ports, LAN ones
 *                   included); DNS (port 53) to the lease resolvers RETURN; allowCidrs RETURN; blocked ranges DROP; then RETURN when public
 *                   egress is on, DROP when it is off.
 *   PROVIDER-I-<h>: ESTABLISHED,RELATED ACCEPT; DNS to a resolver on a host address ACCEPT; DROP (the host's every address: LAN, public,
 *                   the bridge gateway, Docker's other bridges).
 * Every rule carries the comment `provider-lease:<id>`; chains of leases that no longer exist are
 * found by name and removed at start (`removeStale`). Inter-container traffic inside the network is
 * off by the network's enable_icc=false; other bridges are private ranges, dropped here as well.
 *
 * Each change is one `iptables-restore --noflush` per family (atomic, one process), so a lease
 * start costs two short execs, not twenty. `-w` waits for the xtables lock dockerd also takes.
 */
export class Firewall {
  private readonly families: Family[];
  private readonly timeoutMs: number;
  private ip6Missing = false;

  constructor(
    private readonly exec: Exec,
    private readonly log: Logger,
    options: { ipv6?: boolean; timeoutMs?: number } = {},
  ) {
    this.families = options.ipv6 === false ? ['v4'] : ['v4', 'v6'];
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /**
   * Installs the rules of one lease. Replaces the lease's chains' content; the jumps are inserted
   * once, so call `remove` first when the lease may already have rules (a retried start).
   */
  async apply(spec: LeaseFirewallSpec): Promise<void> {
    await Promise.all(
      this.activeFamilies().map(async (family) => {
        try {
          await this.restore(family, applyScript(family, spec));
        } catch (err) {
          if (family === 'v6' && err instanceof ExecError && err.reason === 'not-found') {
            this.ip6Missing = true;
            this.log.warn({ leaseId: spec.leaseId }, 'ip6tables not found: IPv6 lease rules skipped (lease networks have no IPv6)');
            return;
          }
          throw new ProviderError('FIREWALL_FAILED', `could not install the firewall rules of lease ${spec.leaseId}: ${describeError(err)} ${err instanceof ExecError ? err.stderr.trim() : ''}`.trim(), {
            input: spec.leaseId,
            cause: err,
            fix: 'check that iptables works as the daemon user (root or CAP_NET_ADMIN) and that dockerd runs with iptables enabled',
          });
        }
      }),
    );
    this.log.debug({ leaseId: spec.leaseId, bridge: spec.bridge }, 'lease firewall rules installed');
  }

  /** Removes one lease's rules; rules already gone are fine. */
  async remove(leaseId: string): Promise<void> {
    const chains = leaseChains(leaseId);
    await Promise.all(this.activeFamilies().map((family) => this.removeChains(family, [chains.forward, chains.input])));
  }

  /**
   * Removes the rules of every lease not in `keep`: after a crash, rules of leases that ended
   * while the daemon was down. Returns the chains removed as `iptables:<chain>`.
   */
  async removeStale(keep: readonly string[]): Promise<string[]> {
    const wanted = new Set(keep.flatMap((id) => Object.values(leaseChains(id))));
    const removed: string[] = [];
    for (const family of this.activeFamilies()) {
      const listing = await this.list(family);
      if (listing === undefined) continue;
      const ours = [...new Set([...listing.matchAll(/^-N (PROVIDER-[FI]-[0-9a-f]{12})$/gm)].map((m) => m[1] as string))];
      const stale = ours.filter((chain) => !wanted.has(chain));
      await this.removeChains(family, stale, listing);
      removed.push(...stale.map((c) => `${TOOL[family]}:${c}`));
    }
    if (removed.length > 0) this.log.info({ chains: removed }, 'removed firewall rules of leases that no longer exist');
    return removed;
  }

  /** The lease chains present now (for reconcile and tests). */
  async leaseChainsPresent(): Promise<string[]> {
    const listing = await this.list('v4');
    return [...new Set([...(listing ?? '').matchAll(/^-N (PROVIDER-[FI]-[0-9a-f]{12})$/gm)].map((m) => m[1] as string))];
  }

  private activeFamilies(): Family[] {
    return this.families.filter((f) => !(f === 'v6' && this.ip6Missing));
  }

  private async list(family: Family): Promise<string | undefined> {
    try {
      return (await this.exec(TOOL[family], ['-w', '5', '-S'], { timeoutMs: this.timeoutMs })).stdout;
    } catch (err) {
      if (family === 'v6') return undefined;
      throw new ProviderError('FIREWALL_FAILED', `could not list iptables rules: ${describeError(err)}`, { cause: err });
    }
  }

  private async removeChains(family: Family, chains: readonly string[], listing?: string): Promise<void> {
    if (chains.length === 0) return;
    const rules = listing ?? (await this.list(family));
    if (rules === undefined) return;
    const script = removeScript(rules, chains);
    if (script === undefined) return;
    try {
      await this.restore(family, script);
    } catch (err) {
      throw new ProviderError('FIREWALL_FAILED', `could not remove lease firewall rules ${chains.join(', ')}: ${describeError(err)}`, { cause: err });
    }
  }

  private async restore(family: Family, script: string): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'provider-fw-'));
    const file = join(dir, 'rules');
    try {
      await writeFile(file, script, { mode: 0o600 });
      await this.exec(`${TOOL[family]}-restore`, ['-w', '5', '--noflush', file], { timeoutMs: this.timeoutMs });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** The iptables-restore input that installs one lease's chains and jumps. */
export function applyScript(family: Family, spec: LeaseFirewallSpec): string {
  const chains = leaseChains(spec.leaseId);
  const allow = spec.allowCidrs.filter((c) => (family === 'v6') === c.includes(':'));
  const blocked = family === 'v4' ? BLOCKED_V4 : BLOCKED_V6;
  const comment = `-m comment --comment "${COMMENT_PREFIX}${spec.leaseId}"`;
  const established = '-m conntrack --ctstate ESTABLISHED,RELATED';
  const forwardParent = family === 'v4' ? 'DOCKER-USER' : 'FORWARD';
  const dns = (spec.dnsServers ?? []).filter((ip) => (family === 'v6') === ip.includes(':'));
  const dnsRules = (chain: string, verdict: string) =>
    dns.flatMap((ip) => ['udp', 'tcp'].map((proto) => `-A ${chain} -d ${ip} -p ${proto} --dport 53 -j ${verdict} ${comment}`));
  const lines = [
    '*filter',
    // Declaring a chain under --noflush creates it, or empties it when it exists.
    `:${chains.forward} - [0:0]`,
    `:${chains.input} - [0:0]`,
    `-A ${chains.forward} ${established} -j RETURN ${comment}`,
    ...dnsRules(chains.forward, 'RETURN'),
    ...allow.map((cidr) => `-A ${chains.forward} -d ${cidr} -j RETURN ${comment}`),
    ...blocked.map((cidr) => `-A ${chains.forward} -d ${cidr} -j DROP ${comment}`),
    `-A ${chains.forward} -j ${spec.publicEgress ? 'RETURN' : 'DROP'} ${comment}`,
    `-A ${chains.input} ${established} -j ACCEPT ${comment}`,
    ...dnsRules(chains.input, 'ACCEPT'),
    `-A ${chains.input} -j DROP ${comment}`,
    `-I ${forwardParent} 1 -i ${spec.bridge} -j ${chains.forward} ${comment}`,
    `-I INPUT 1 -i ${spec.bridge} -j ${chains.input} ${comment}`,
    'COMMIT',
    '',
  ];
  return lines.join('\n');
}

/** The iptables-restore input that deletes the jumps to `chains`, then the chains; undefined when nothing is there. */
export function removeScript(listing: string, chains: readonly string[]): string | undefined {
  const targets = new Set(chains);
  const lines: string[] = [];
  for (const line of listing.split('\n')) {
    const m = /^-A (\S+) .*-j (PROVIDER-[FI]-[0-9a-f]{12})(?:\s|$)/.exec(line);
    if (!m || !targets.has(m[2] as string) || targets.has(m[1] as string)) continue;
    lines.push(`-D ${line.slice(3)}`);
  }
  const present = chains.filter((chain) => new RegExp(`^-N ${chain}$`, 'm').test(listing));
  for (const chain of present) lines.push(`-F ${chain}`);
  for (const chain of present) lines.push(`-X ${chain}`);
  if (lines.length === 0) return undefined;
  return ['*filter', ...lines, 'COMMIT', ''].join('\n');
}
