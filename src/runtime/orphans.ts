import type Docker from 'dockerode';
import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { boundedCall, type CallBounds } from './bounded-call';
import { engineMessage } from './docker-errors';
import type { Firewall } from './firewall';
import type { InstanceRegistry } from './instance';
import { MANAGED_FILTER } from './lease-containers';
import { LABELS, parseChainName, shortHash } from './names';

export interface OrphanCollectorDeps {
  docker: Docker;
  firewall: Firewall;
  registry: InstanceRegistry;
  clock: Clock;
  log: Logger;
  /** runtime.network.orphanGraceSeconds, in ms. */
  graceMs: number;
  /** docker.requestTimeoutMs */
  requestTimeoutMs: number;
}

export interface Collected {
  networks: string[];
  chains: string[];
}

/**
 * Collects what other daemon instances on this engine left behind, once they are provably gone
 * (InstanceRegistry.judge says `abandoned`): their lease networks that no container uses, and their
 * firewall chains of leases that have neither a network nor a container any more. Containers are
 * never touched, running or not: they are tenants' work and their owner's record; the operator is
 * told about them. A live instance, or one nothing can be proven about, keeps everything.
 *
 * Alongside, it keeps this instance's own record fresh (the heartbeat others judge it by).
 */
export class OrphanCollector {
  private readonly reported = new Set<string>();

  constructor(private readonly deps: OrphanCollectorDeps) {}

  /** One pass over every other instance seen in Docker's objects and the firewall's chains. */
  async collect(signal?: AbortSignal): Promise<Collected> {
    const { docker, firewall, registry, log } = this.deps;
    const bounds: CallBounds = { signal, timeoutMs: this.deps.requestTimeoutMs };
    const [networks, containers, chains] = await Promise.all([
      boundedCall('listing the lease networks', bounds, (abortSignal) => docker.listNetworks({ filters: MANAGED_FILTER, abortSignal })),
      boundedCall('listing the lease containers', bounds, (abortSignal) => docker.listContainers({ all: true, filters: MANAGED_FILTER, abortSignal })),
      firewall.chainsPresent(),
    ]);
    const ours = firewall.instanceId;
    const instances = new Set<string>();
    for (const labels of [...networks.map((n) => n.Labels), ...containers.map((c) => c.Labels)]) {
      const owner = labels?.[LABELS.instance];
      if (owner !== undefined && owner !== ours) instances.add(owner);
    }
    for (const chain of chains) {
      const owner = parseChainName(chain)?.instanceId;
      if (owner !== undefined && owner !== ours) instances.add(owner);
    }
    // Records of abandoned instances that left nothing at all go too: the registry does not grow forever.
    for (const instanceId of await registry.ids()) if (instanceId !== ours) instances.add(instanceId);
    const collected: Collected = { networks: [], chains: [] };
    for (const instanceId of instances) {
      const verdict = await registry.judge(instanceId, this.deps.graceMs).catch((err: unknown) => ({ state: 'unknown' as const, why: describeError(err) }));
      if (verdict.state !== 'abandoned') continue;
      const ownedBy = (labels: Record<string, string> | undefined): boolean => labels?.[LABELS.instance] === instanceId;
      const theirContainers = containers.filter((c) => ownedBy(c.Labels));
      const withContainer = new Set(theirContainers.map((c) => c.Labels[LABELS.leaseId] ?? ''));
      // Leases of the instance that keep something: their chains stay as well.
      const left = new Set(withContainer);
      for (const network of networks.filter((n) => ownedBy(n.Labels))) {
        const leaseId = network.Labels?.[LABELS.leaseId] ?? '';
        if (withContainer.has(leaseId)) continue;
        try {
          await boundedCall(`removing network ${network.Name}`, bounds, (abortSignal) => docker.getNetwork(network.Id).remove({ abortSignal }));
          collected.networks.push(network.Name);
        } catch (err) {
          left.add(leaseId);
          log.warn({ network: network.Name, instanceId, err: engineMessage(err) }, 'could not remove a network of a gone instance');
        }
      }
      const alive = new Set([...left].map((leaseId) => shortHash(leaseId)));
      const stale = chains.filter((chain) => {
        const parsed = parseChainName(chain);
        return parsed?.instanceId === instanceId && !alive.has(parsed.hash);
      });
      if (stale.length > 0) collected.chains.push(...(await firewall.removeNamed(stale)));
      const since = new Date(verdict.since).toISOString();
      if (theirContainers.length > 0 && !this.reported.has(instanceId)) {
        this.reported.add(instanceId);
        log.warn(
          { instanceId, since, containers: theirContainers.map((c) => c.Names[0]) },
          'containers of a daemon instance that is gone are left alone (their networks too): remove them with docker rm -f once nobody needs them',
        );
      }
      if (left.size === 0) await registry.forget(instanceId);
    }
    if (collected.networks.length + collected.chains.length > 0) {
      log.info({ networks: collected.networks, chains: collected.chains }, 'collected the lease networks and firewall chains of daemon instances that are gone');
    }
    return collected;
  }

  /**
   * Every `intervalMs` until `signal` aborts: this instance's heartbeat, then a collection. A
   * failed pass is logged and the next one tries again.
   */
  async run(options: { signal: AbortSignal; intervalMs: number }): Promise<void> {
    const { signal, intervalMs } = options;
    while (!signal.aborted) {
      await this.deps.registry.heartbeat().catch((err: unknown) => this.deps.log.warn({ err: describeError(err) }, 'could not write this instance\'s heartbeat'));
      await this.collect(signal).catch((err: unknown) => {
        if (!signal.aborted) this.deps.log.warn({ err: describeError(err) }, 'collecting what gone daemon instances left failed; trying again later');
      });
      await this.deps.clock.sleep(intervalMs, signal).catch(() => undefined);
    }
  }
}
