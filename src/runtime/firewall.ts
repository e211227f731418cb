import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../log';
import { ProviderError, describeError } from '../errors';
import { ExecError, type Exec } from '../util/exec';
import { rulesBroken, forwardHookScript } from './firewall-check';
import { DEFAULT_INSTANCE_ID, assertInstanceId, leaseChains, legacyLeaseChains, parseChainName } from './names';

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
 * Layout per lease L with bridge B, for iptables and ip6tables (chains are named
 * PV-<instance>-F-<h> and PV-<instance>-I-<h>, <h> a hash of L: the name says which daemon
 * instance owns them):
 *   filter/DOCKER-USER: -i B -j F   (traffic the lease sends to other hosts; ip6tables
 *                       uses FORWARD, since Docker 20.10 leaves ip6tables alone by default)
 *   filter/INPUT:       -i B -j I   (traffic the lease sends to this host itself)
 *   F: ESTABLISHED,RELATED RETURN (replies to clients of published ports, LAN ones
 *                   included); DNS (port 53) to the lease resolvers RETURN; allowCidrs RETURN; blocked ranges DROP; then RETURN when public
 *                   egress is on, DROP when it is off.
 *   I: ESTABLISHED,RELATED ACCEPT; DNS to a resolver on a host address ACCEPT; DROP (the host's every address: LAN, public,
 *                   the bridge gateway, Docker's other bridges).
 * Every rule carries the comment `provider-lease:<id>`; this instance's chains of leases that no
 * longer exist are found by name and removed at start (`removeStale`), and the rules of every lease
 * are checked and restored when another tool removed them (`verify`, run by FirewallWatch). Inter-container traffic inside the network is
 * off by the network's enable_icc=false; other bridges are private ranges, dropped here as well.
 *
 * Each change is one `iptables-restore --noflush` per family (atomic, one process), so a lease
 * start costs two short execs, not twenty. `-w` waits for the xtables lock dockerd also takes.
 */
export class Firewall {
  readonly instanceId: string;
  private readonly families: Family[];
  private readonly timeoutMs: number;
  private ip6Missing = false;
  /** What each lease's rules should be: `verify` restores them from here when another tool removed them. */
  private readonly applied = new Map<string, LeaseFirewallSpec>();
  /** Changes one at a time: a check must not restore the rules of a lease a remove is taking away. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly exec: Exec,
    private readonly log: Logger,
    options: { ipv6?: boolean; timeoutMs?: number; instanceId?: string } = {},
  ) {
    this.families = options.ipv6 === false ? ['v4'] : ['v4', 'v6'];
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.instanceId = assertInstanceId(options.instanceId ?? DEFAULT_INSTANCE_ID);
  }

  /** This instance's chain names for a lease. */
  chainsOf(leaseId: string): { forward: string; input: string } {
    return leaseChains(leaseId, this.instanceId);
  }

  /**
   * Installs the rules of one lease. Replaces the lease's chains' content; the jumps are inserted
   * once, so call `remove` first when the lease may already have rules (a retried start).
   */
  apply(spec: LeaseFirewallSpec): Promise<void> {
    return this.exclusive(() => this.install(spec));
  }

  /** Remembers the rules a lease adopted after a restart has (present already), for `verify`. */
  track(spec: LeaseFirewallSpec): void {
    this.applied.set(spec.leaseId, spec);
  }

  /** Removes one lease's rules (and those a daemon from before instances gave it); rules already gone are fine. */
  remove(leaseId: string): Promise<void> {
    return this.exclusive(async () => {
      this.applied.delete(leaseId);
      const chains = [...Object.values(this.chainsOf(leaseId)), ...Object.values(legacyLeaseChains(leaseId))];
      await Promise.all(this.activeFamilies().map((family) => this.removeChains(family, chains)));
    });
  }

  /**
   * Removes this instance's lease rules not in `keep`: after a crash, rules of leases that ended
   * while the daemon was down. Other instances' chains are theirs. Returns the chains removed as
   * `iptables:<chain>`.
   */
  removeStale(keep: readonly string[]): Promise<string[]> {
    const wanted = new Set(keep.flatMap((id) => Object.values(this.chainsOf(id))));
    return this.removeWhere((chain) => parseChainName(chain)?.instanceId === this.instanceId && !wanted.has(chain));
  }

  /** Removes the named lease chains (another instance's, once it is provably gone) and the jumps to them. */
  removeNamed(chains: readonly string[]): Promise<string[]> {
    const named = new Set(chains);
    return this.removeWhere((chain) => named.has(chain));
  }

  /** This instance's lease chains present now (for reconcile and tests). */
  async leaseChainsPresent(): Promise<string[]> {
    return (await this.chainsPresent()).filter((chain) => parseChainName(chain)?.instanceId === this.instanceId);
  }

  /** Every lease chain present now, any instance's (iptables). */
  async chainsPresent(): Promise<string[]> {
    return chainsIn((await this.list('v4')) ?? '');
  }

  /**
   * Checks the rules of every lease this firewall installed or tracks against iptables, and
   * restores what another tool took away: a flushed or deleted lease chain, a missing jump to one,
   * Docker's FORWARD -> DOCKER-USER hook. Returns what it restored (lease ids, `hook:<family>`).
   *
   * dockerd itself moves the hook whenever it creates a network (its bridge rules are inserted
   * first, then the hook is deleted and inserted back on top): a listing taken in between shows
   * it missing or second. With `settle`, a hook that looks out of place is listed again after
   * `settle()` resolves and restored only if it still is, so lease starts are not "restored".
   */
  verify(settle?: () => Promise<void>): Promise<string[]> {
    return this.exclusive(async () => {
      const restored = new Set<string>();
      for (const family of this.activeFamilies()) {
        if (this.applied.size === 0) break;
        let listing = await this.list(family);
        if (listing === undefined) continue;
        const specs = [...this.applied.values()];
        let hook = family === 'v4' ? forwardHookScript(listing) : undefined;
        if (hook !== undefined && settle) {
          await settle();
          listing = (await this.list(family)) ?? listing;
          hook = forwardHookScript(listing);
        }
        if (hook !== undefined) {
          await this.restore(family, hook);
          restored.add(`hook:${family}`);
        }
        for (const spec of specs) {
          const chains = this.chainsOf(spec.leaseId);
          if (!rulesBroken(listing, applyScript(family, spec, chains), chains, spec.bridge)) continue;
          await this.removeChains(family, [chains.forward, chains.input], listing);
          await this.restore(family, applyScript(family, spec, chains));
          restored.add(spec.leaseId);
        }
      }
      return [...restored];
    });
  }

  private async install(spec: LeaseFirewallSpec): Promise<void> {
    const chains = this.chainsOf(spec.leaseId);
    await Promise.all(
      this.activeFamilies().map(async (family) => {
        try {
          await this.restore(family, applyScript(family, spec, chains));
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
    this.applied.set(spec.leaseId, spec);
    this.log.debug({ leaseId: spec.leaseId, bridge: spec.bridge }, 'lease firewall rules installed');
  }

  private removeWhere(match: (chain: string) => boolean): Promise<string[]> {
    return this.exclusive(async () => {
      const removed: string[] = [];
      for (const family of this.activeFamilies()) {
        const listing = await this.list(family);
        if (listing === undefined) continue;
        const chains = chainsIn(listing).filter(match);
        await this.removeChains(family, chains, listing);
        removed.push(...chains.map((c) => `${TOOL[family]}:${c}`));
      }
      if (removed.length > 0) this.log.info({ chains: removed }, 'removed firewall rules of leases that no longer exist');
      return removed;
    });
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => undefined);
    return run;
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

/** Lease chains (any instance's, legacy ones too) declared in an `iptables -S` listing. */
export function chainsIn(listing: string): string[] {
  return [...new Set([...listing.matchAll(/^-N (\S+)$/gm)].map((m) => m[1] as string))].filter((c) => parseChainName(c) !== undefined);
}

/** The iptables-restore input that installs one lease's chains and jumps. */
export function applyScript(family: Family, spec: LeaseFirewallSpec, chains: { forward: string; input: string }): string {
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
    const m = /^-A (\S+) .*-j (\S+)(?:\s|$)/.exec(line);
    if (!m || !targets.has(m[2] as string) || targets.has(m[1] as string)) continue;
    lines.push(`-D ${line.slice(3)}`);
  }
  const present = chains.filter((chain) => new RegExp(`^-N ${chain}$`, 'm').test(listing));
  for (const chain of present) lines.push(`-F ${chain}`);
  for (const chain of present) lines.push(`-X ${chain}`);
  if (lines.length === 0) return undefined;
  return ['*filter', ...lines, 'COMMIT', ''].join('\n');
}
