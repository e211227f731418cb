import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import { boundedCall, type CallBounds } from './bounded-call';
import { engineMessage, isEngineConflict, isEngineNotFound } from './docker-errors';
import type { Exec } from '../util/exec';
import { execFileAsync } from '../util/exec';
import type { Firewall, LeaseFirewallSpec } from './firewall';
import { MANAGED_FILTER, ownedBy, type LeaseContainer } from './lease-containers';
import type { Manifest } from './manifest';
import { LABELS, bridgeName, networkName } from './names';
import { SubnetPool } from './subnet-pool';

export interface LeaseNetworkDeps {
  docker: Docker;
  firewall: Firewall;
  config: Pick<ProviderConfig, 'runtime'>;
  log: Logger;
  /** Where the host's resolvers are read from when runtime.egress.dnsServers is empty. */
  resolvConfPaths?: string[];
  /** Runs `ip route` for the subnet pool (default: the real one). */
  exec?: Exec;
}

/** Subnets a create may lose to another daemon picking the same one at once, before giving up. */
const SUBNET_ATTEMPTS = 5;

/**
 * A lease's own bridge network and the firewall rules keyed on its bridge: created before its
 * container, removed after it, and what a crash left of either cleaned up by reconcile. Its
 * subnet comes from runtime.network.subnetPool; it is labelled with the daemon's instance, and
 * reconcile only ever touches the instance's own networks.
 */
export class LeaseNetwork {
  private resolvers: string[] | undefined;
  private readonly pool: SubnetPool;

  constructor(private readonly deps: LeaseNetworkDeps) {
    const { subnetPool, subnetPrefix } = deps.config.runtime.network;
    this.pool = new SubnetPool({ docker: deps.docker, exec: deps.exec ?? execFileAsync, settings: { pool: subnetPool, prefix: subnetPrefix } });
  }

  private get instanceId(): string {
    return this.deps.firewall.instanceId;
  }

  /** Creates the lease's network; true when it was there already (a retried start). */
  async ensure(leaseId: string, bounds: CallBounds): Promise<boolean> {
    const lost: string[] = [];
    for (;;) {
      const subnet = await this.pool.pick(bounds, lost);
      try {
        await this.create(leaseId, subnet, bounds);
        return false;
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        // Another daemon (or a tool) took the subnet between the pick and the create.
        if (/overlap/i.test(engineMessage(err)) && lost.length < SUBNET_ATTEMPTS - 1) {
          lost.push(subnet);
          continue;
        }
        return await this.existing(leaseId, err, bounds);
      } finally {
        this.pool.release(subnet);
      }
    }
  }

  private async create(leaseId: string, subnet: string, bounds: CallBounds): Promise<void> {
    const bridge = bridgeName(leaseId);
    await boundedCall(`creating the network of lease ${leaseId}`, bounds, (abortSignal) =>
      this.deps.docker.createNetwork({
        Name: networkName(leaseId),
        Driver: 'bridge',
        CheckDuplicate: true,
        Internal: false,
        Attachable: false,
        EnableIPv6: false,
        IPAM: { Driver: 'default', Config: [{ Subnet: subnet }] },
        Options: {
          'com.docker.network.bridge.name': bridge,
          'com.docker.network.bridge.enable_icc': 'false',
          'com.docker.network.bridge.enable_ip_masquerade': 'true',
        },
        Labels: { [LABELS.managed]: 'true', [LABELS.leaseId]: leaseId, [LABELS.bridge]: bridge, [LABELS.instance]: this.instanceId },
        abortSignal,
      } as Docker.NetworkCreateOptions),
    );
  }

  /** After a failed create: true when the lease's own network is there (a retried start), else why not. */
  private async existing(leaseId: string, err: unknown, bounds: CallBounds): Promise<boolean> {
    const name = networkName(leaseId);
    const bridge = bridgeName(leaseId);
    if (isEngineConflict(err) || /already exists/i.test(engineMessage(err))) {
      // @types/dockerode misses the options of Network.inspect, which dockerode takes.
      const network = this.deps.docker.getNetwork(name) as unknown as { inspect(options: object): Promise<Docker.NetworkInspectInfo> };
      const existing = await boundedCall(`inspecting network ${name}`, bounds, (abortSignal) => network.inspect({ abortSignal }));
      const owned = ownedBy(existing.Labels, this.instanceId, new Set([leaseId]));
      if (owned && existing.Labels?.[LABELS.leaseId] === leaseId && existing.Options?.['com.docker.network.bridge.name'] === bridge) return true;
      const owner = owned ? '' : ` (it belongs to instance ${existing.Labels?.[LABELS.instance] ?? 'unknown'})`;
      throw new ProviderError('NETWORK_SETUP_FAILED', `network ${name} exists and is not the one this lease would create${owner}`, { input: name });
    }
    throw new ProviderError('NETWORK_SETUP_FAILED', `could not create the network of lease ${leaseId}: ${engineMessage(err)}`, {
      input: leaseId,
      cause: err,
      fix: /overlap/i.test(engineMessage(err)) ? `other networks kept taking the subnets picked from ${this.pool.range}: give this daemon a runtime.network.subnetPool of its own` : undefined,
    });
  }

  /** Installs the lease's firewall rules (its egress as the manifest asks and the config allows). */
  async applyRules(leaseId: string, manifest: Pick<Manifest, 'egress'>): Promise<void> {
    await this.deps.firewall.apply(await this.rulesOf(leaseId, manifest));
  }

  private async rulesOf(leaseId: string, manifest: Pick<Manifest, 'egress'>): Promise<LeaseFirewallSpec> {
    const { runtime } = this.deps.config;
    return {
      leaseId,
      bridge: bridgeName(leaseId),
      publicEgress: runtime.egress.public && manifest.egress !== 'none',
      allowCidrs: runtime.egress.allowCidrs,
      dnsServers: await this.leaseResolvers(),
    };
  }

  /**
   * After a restart: this instance's chains and networks of leases not in `keep` are removed (what
   * a crash left behind); the rules of its running `containers` are reinstalled when missing, and
   * tracked for the firewall check either way.
   */
  async reconcile(containers: readonly LeaseContainer[], keep: ReadonlySet<string>, bounds: CallBounds): Promise<void> {
    const { firewall, log } = this.deps;
    await firewall.removeStale([...keep]);
    const chains = new Set(await firewall.leaseChainsPresent());
    for (const c of containers) {
      if (!c.running) continue;
      const spec = await this.rulesOf(c.leaseId, { egress: c.egress });
      if (chains.has(firewall.chainsOf(c.leaseId).forward)) {
        firewall.track(spec);
        continue;
      }
      // Rules that vanished under a running lease (a firewall reload flushing tables) come back.
      log.warn({ leaseId: c.leaseId }, 'firewall rules of a running lease were missing; reinstalling them');
      await firewall.apply(spec);
    }
    await this.removeStale(keep, bounds);
  }

  /** Removes the lease's network; one that is not there is fine. */
  async remove(leaseId: string, bounds: CallBounds): Promise<void> {
    try {
      await boundedCall(`removing the network of lease ${leaseId}`, bounds, (abortSignal) => this.deps.docker.getNetwork(networkName(leaseId)).remove({ abortSignal }));
    } catch (err) {
      if (!isEngineNotFound(err)) throw err;
    }
  }

  /** Removes this instance's networks of leases not in `keep` (what a crash left behind); other instances' are theirs. */
  async removeStale(keep: ReadonlySet<string>, bounds: CallBounds): Promise<void> {
    const networks = await boundedCall('listing the lease networks', bounds, (abortSignal) => this.deps.docker.listNetworks({ filters: MANAGED_FILTER, abortSignal }));
    for (const network of networks) {
      const owner = network.Labels?.[LABELS.leaseId];
      if (owner === undefined || keep.has(owner) || network.Labels?.[LABELS.instance] !== this.instanceId) continue;
      await boundedCall(`removing the network of lease ${owner}`, bounds, (abortSignal) => this.deps.docker.getNetwork(network.Id).remove({ abortSignal }))
        .then(() => this.deps.log.info({ leaseId: owner }, 'removed the network of a lease that no longer exists'))
        .catch((err: unknown) => this.deps.log.warn({ leaseId: owner, err: engineMessage(err) }, 'could not remove a stale lease network'));
    }
  }

  /**
   * The resolvers the engine's embedded DNS forwards lease queries to: runtime.egress.dnsServers,
   * or the host's. Docker reads systemd-resolved's upstream list when /etc/resolv.conf points at
   * 127.0.0.53, and skips loopback ones (it dials those from the host, not the lease).
   */
  private async leaseResolvers(): Promise<string[]> {
    if (this.resolvers !== undefined) return this.resolvers;
    let servers = [...this.deps.config.runtime.egress.dnsServers];
    if (servers.length === 0) {
      for (const path of this.deps.resolvConfPaths ?? ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']) {
        const text = await readFile(path, 'utf8').catch(() => '');
        for (const m of text.matchAll(/^\s*nameserver\s+([0-9a-fA-F:.]+)(?:%\S+)?\s*$/gm)) {
          const ip = m[1] as string;
          if (!/^127\./.test(ip) && ip !== '::1' && !servers.includes(ip)) servers.push(ip);
        }
      }
    }
    servers = servers.slice(0, 8);
    this.resolvers = servers;
    return servers;
  }
}
