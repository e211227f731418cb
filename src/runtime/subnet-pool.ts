import type Docker from 'dockerode';
import { ProviderError, describeError } from '../errors';
import type { Exec } from '../util/exec';
import { boundedCall, type CallBounds } from './bounded-call';

/** An IPv4 range: `base` is the network address as an unsigned 32-bit number. */
export interface Cidr {
  base: number;
  prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

/** `a.b.c.d/n` (or a bare address, a /32) with its host bits cleared; undefined for anything else. */
export function parseCidr(text: string): Cidr | undefined {
  const m = IPV4.exec(text.trim());
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  const prefix = m[5] === undefined ? 32 : Number(m[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const address = octets.reduce((acc, o) => acc * 256 + o, 0);
  return { base: address - (address % blockSize(prefix)), prefix };
}

export function formatCidr(cidr: Cidr): string {
  const b = cidr.base;
  return `${Math.floor(b / 2 ** 24) % 256}.${Math.floor(b / 2 ** 16) % 256}.${Math.floor(b / 2 ** 8) % 256}.${b % 256}/${cidr.prefix}`;
}

/** How many addresses a /prefix holds. */
export function blockSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** Two ranges overlap when one contains the other: CIDR blocks never partly overlap. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + blockSize(b.prefix) && b.base < a.base + blockSize(a.prefix);
}

/** How many /prefix subnets the pool holds. */
export function subnetCount(pool: Cidr, prefix: number): number {
  return prefix < pool.prefix ? 0 : 2 ** (prefix - pool.prefix);
}

/**
 * The first /prefix subnet of `pool`, in address order, that overlaps nothing in `used`. A used
 * range wider than a subnet is skipped in one step, so the cost is the number of used ranges, not
 * of subnets.
 */
export function firstFreeSubnet(pool: Cidr, prefix: number, used: readonly Cidr[]): Cidr | undefined {
  const size = blockSize(prefix);
  const end = pool.base + blockSize(pool.prefix);
  const inPool = used.filter((u) => overlaps(u, pool)).sort((a, b) => a.base - b.base);
  let address = pool.base;
  while (address + size <= end) {
    const candidate = { base: address, prefix };
    const blocker = inPool.find((u) => overlaps(u, candidate));
    if (blocker === undefined) return candidate;
    const blockerEnd = blocker.base + blockSize(blocker.prefix);
    address = Math.max(address + size, Math.ceil(blockerEnd / size) * size);
  }
  return undefined;
}

/**
 * Destinations of `ip -o -4 route show table all`. The default route is not a network (every more
 * specific route wins over it), so it blocks nothing; every other route does, local and
 * unreachable ones included: some tool on this host already uses that range.
 */
export function parseRoutes(output: string): Cidr[] {
  const routes: Cidr[] = [];
  const types = new Set(['unicast', 'local', 'broadcast', 'multicast', 'throw', 'unreachable', 'prohibit', 'blackhole', 'nat', 'anycast']);
  for (const line of output.split('\n')) {
    const words = line.trim().split(/\s+/);
    const destination = types.has(words[0] ?? '') ? words[1] : words[0];
    if (destination === undefined || destination === 'default') continue;
    const cidr = parseCidr(destination);
    if (cidr !== undefined && cidr.prefix > 0) routes.push(cidr);
  }
  return routes;
}

/** IPv4 subnets of Docker's networks (any driver, any owner). */
export function dockerSubnets(networks: readonly Docker.NetworkInspectInfo[]): Cidr[] {
  const out: Cidr[] = [];
  for (const network of networks) {
    for (const config of network.IPAM?.Config ?? []) {
      const cidr = config.Subnet === undefined ? undefined : parseCidr(config.Subnet);
      if (cidr !== undefined) out.push(cidr);
    }
  }
  return out;
}

export interface SubnetPoolSettings {
  /** runtime.network.subnetPool */
  pool: string;
  /** runtime.network.subnetPrefix */
  prefix: number;
}

/**
 * Hands out lease subnets from the pool the operator configured, so lease networks never depend on
 * Docker's default address pools (about 30 bridge networks) or on daemon.json. Nothing is stored:
 * what is taken is read from what exists each time (every Docker network's subnets and every host
 * route), so a restart, another daemon on the same engine, or a VPN that came up since all count.
 * The engine is the arbiter when two daemons pick the same subnet at once: one create fails with an
 * overlap and the caller picks again.
 */
export class SubnetPool {
  private readonly pool: Cidr;
  /** Picked and not yet created (or failed): concurrent starts of this daemon must not pick them too. */
  private readonly reserved = new Set<string>();

  constructor(
    private readonly deps: { docker: Docker; exec: Exec; settings: SubnetPoolSettings },
  ) {
    const pool = parseCidr(deps.settings.pool);
    if (pool === undefined || formatCidr(pool) !== deps.settings.pool.trim()) {
      throw new ProviderError('CONFIG_INVALID', `runtime.network.subnetPool "${deps.settings.pool}" is not an IPv4 network address with a prefix`, {
        input: 'runtime.network.subnetPool',
        fix: 'set runtime.network.subnetPool to a range such as 10.77.0.0/16 (host bits zero)',
      });
    }
    this.pool = pool;
  }

  get range(): string {
    return formatCidr(this.pool);
  }

  /**
   * The first free subnet, skipping `exclude` too (subnets a create just lost to another daemon),
   * reserved until `release`: call it once the network is created or its create failed.
   */
  async pick(bounds: CallBounds, exclude: readonly string[] = []): Promise<string> {
    const { prefix } = this.deps.settings;
    const taken = await this.taken(bounds);
    // No await from here to the reservation: two picks of this daemon never hand out one subnet.
    const used = [...taken, ...[...exclude, ...this.reserved].flatMap((e) => parseCidr(e) ?? [])];
    const free = firstFreeSubnet(this.pool, prefix, used);
    if (free === undefined) {
      throw new ProviderError('SUBNET_POOL_EXHAUSTED', `no free /${prefix} subnet is left in the lease subnet pool ${this.range} (${subnetCount(this.pool, prefix)} subnets; every one is used by a Docker network or overlaps a host route)`, {
        input: 'runtime.network.subnetPool',
        fix: `give leases a larger or unused range: widen runtime.network.subnetPool, or raise runtime.network.subnetPrefix (smaller subnets); \`docker network ls --filter label=provider.managed=true\` and \`ip route show table all\` show what takes ${this.range}`,
      });
    }
    const subnet = formatCidr(free);
    this.reserved.add(subnet);
    return subnet;
  }

  release(subnet: string): void {
    this.reserved.delete(subnet);
  }

  /** Ranges in use on this host: Docker's networks and the kernel's routes. */
  private async taken(bounds: CallBounds): Promise<Cidr[]> {
    const networks = await boundedCall('listing the Docker networks', bounds, (abortSignal) => this.deps.docker.listNetworks({ abortSignal }));
    let routes: Cidr[];
    try {
      routes = parseRoutes((await this.deps.exec('ip', ['-o', '-4', 'route', 'show', 'table', 'all'], { timeoutMs: bounds.timeoutMs, signal: bounds.signal })).stdout);
    } catch (err) {
      throw new ProviderError('NETWORK_SETUP_FAILED', `could not read the host's routes to pick a lease subnet: ${describeError(err)}`, {
        cause: err,
        fix: 'install iproute2 (the `ip` command) on the host',
      });
    }
    return [...dockerSubnets(networks), ...routes];
  }
}
