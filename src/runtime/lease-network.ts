import { readFile } from 'node:fs/promises';
import type Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import { boundedCall, type CallBounds } from './bounded-call';
import { engineMessage, isEngineConflict, isEngineNotFound } from './docker-errors';
import type { Firewall, LeaseFirewallSpec } from './firewall';
import { MANAGED_FILTER } from './lease-containers';
import type { Manifest } from './manifest';
import { LABELS, bridgeName, networkName } from './names';

export interface LeaseNetworkDeps {
  docker: Docker;
  firewall: Firewall;
  config: Pick<ProviderConfig, 'runtime'>;
  log: Logger;
  /** Where the host's resolvers are read from when runtime.egress.dnsServers is empty. */
  resolvConfPaths?: string[];
}

/**
 * A lease's own bridge network and the firewall rules keyed on its bridge: created before its
 * container, removed after it, and what a crash left of either cleaned up by reconcile.
 */
export class LeaseNetwork {
  private resolvers: string[] | undefined;

  constructor(private readonly deps: LeaseNetworkDeps) {}

  /** Creates the lease's network; true when it was there already (a retried start). */
  async ensure(leaseId: string, bounds: CallBounds): Promise<boolean> {
    const name = networkName(leaseId);
    const bridge = bridgeName(leaseId);
    try {
      await boundedCall(`creating the network of lease ${leaseId}`, bounds, (abortSignal) =>
        this.deps.docker.createNetwork({
          Name: name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Internal: false,
          Attachable: false,
          EnableIPv6: false,
          Options: {
            'com.docker.network.bridge.name': bridge,
            'com.docker.network.bridge.enable_icc': 'false',
            'com.docker.network.bridge.enable_ip_masquerade': 'true',
          },
          Labels: { [LABELS.managed]: 'true', [LABELS.leaseId]: leaseId, [LABELS.bridge]: bridge },
          abortSignal,
        } as Docker.NetworkCreateOptions),
      );
      return false;
    } catch (err) {
      if (err instanceof ProviderError) throw err;
      if (isEngineConflict(err) || /already exists/i.test(engineMessage(err))) {
        // @types/dockerode misses the options of Network.inspect, which dockerode takes.
        const network = this.deps.docker.getNetwork(name) as unknown as { inspect(options: object): Promise<Docker.NetworkInspectInfo> };
        const existing = await boundedCall(`inspecting network ${name}`, bounds, (abortSignal) => network.inspect({ abortSignal }));
        if (existing.Labels?.[LABELS.leaseId] === leaseId && existing.Options?.['com.docker.network.bridge.name'] === bridge) return true;
        throw new ProviderError('NETWORK_SETUP_FAILED', `network ${name} exists and is not the one this lease would create`, { input: name });
      }
      throw new ProviderError('NETWORK_SETUP_FAILED', `could not create the network of lease ${leaseId}: ${engineMessage(err)}`, {
        input: leaseId,
        cause: err,
        fix: /pool|overlap/i.test(engineMessage(err)) ? 'Docker ran out of address pools: set default-address-pools in /etc/docker/daemon.json' : undefined,
      });
    }
  }

  /** Installs the lease's firewall rules (its egress as the manifest asks and the config allows). */
  async applyRules(leaseId: string, manifest: Pick<Manifest, 'egress'>): Promise<void> {
    const { runtime } = this.deps.config;
    const spec: LeaseFirewallSpec = {
      leaseId,
      bridge: bridgeName(leaseId),
      publicEgress: runtime.egress.public && manifest.egress !== 'none',
      allowCidrs: runtime.egress.allowCidrs,
      dnsServers: await this.leaseResolvers(),
    };
    await this.deps.firewall.apply(spec);
  }

  /** Removes the lease's network; one that is not there is fine. */
  async remove(leaseId: string, bounds: CallBounds): Promise<void> {
    try {
      await boundedCall(`removing the network of lease ${leaseId}`, bounds, (abortSignal) => this.deps.docker.getNetwork(networkName(leaseId)).remove({ abortSignal }));
    } catch (err) {
      if (!isEngineNotFound(err)) throw err;
    }
  }

  /** Removes the networks of leases not in `keep` (what a crash left behind). */
  async removeStale(keep: ReadonlySet<string>, bounds: CallBounds): Promise<void> {
    const networks = await boundedCall('listing the lease networks', bounds, (abortSignal) => this.deps.docker.listNetworks({ filters: MANAGED_FILTER, abortSignal }));
    for (const network of networks) {
      const owner = network.Labels?.[LABELS.leaseId];
      if (owner === undefined || keep.has(owner)) continue;
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
