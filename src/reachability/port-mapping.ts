import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { withTimeout } from '../util/with-timeout';

/** One gateway on the LAN that maps ports (UPnP-IGD or NAT-PMP), as the NAT library gives it. */
export interface NatGateway {
  /** `upnp` or `nat-pmp`, and where (for logs and status). */
  readonly kind: 'upnp' | 'nat-pmp';
  readonly description: string;
  /** This machine's address on the link towards the gateway: what the router forwards to. */
  readonly localAddress: string;
  map(internalPort: number, internalHost: string, options: { externalPort: number; ttlSeconds: number; signal: AbortSignal }): Promise<{ externalHost: string; externalPort: number }>;
  unmap(internalPort: number, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** Finds the LAN's gateway within the signal's time; undefined when none answers. */
export interface NatDiscovery {
  find(signal: AbortSignal): Promise<NatGateway | undefined>;
}

export interface PortMappingOptions {
  port: number;
  ttlSeconds: number;
  /** Each router request (discovery included) waits at most this long. */
  timeoutMs: number;
}

/** A renewal that fails is retried this often until the lease runs out. */
const RETRY_MS = 30_000;

/**
 * The API port mapped on the home router: created at start, renewed at half its lease time (a
 * router forgets a mapping whose lease ran out, and a router that rebooted forgets it at once), and
 * removed on stop, so the port is not left open on the router once the daemon is gone.
 */
export class RouterPortMapping {
  private readonly controller = new AbortController();
  private renewing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly gateway: NatGateway,
    readonly externalHost: string,
    readonly externalPort: number,
    private readonly options: PortMappingOptions,
    private readonly deps: { clock: Clock; log: Logger },
  ) {}

  /** Undefined when no gateway answers; throws UPNP_FAILED when one answers but refuses the mapping. */
  static async create(discovery: NatDiscovery, options: PortMappingOptions, deps: { clock: Clock; log: Logger; signal?: AbortSignal }): Promise<RouterPortMapping | undefined> {
    const gateway = await withTimeout('looking for a UPnP/NAT-PMP gateway', options.timeoutMs, (signal) => discovery.find(signal), deps.signal).catch((err: unknown) => {
      deps.log.debug({ err: describeError(err) }, 'no port-mapping gateway answered');
      return undefined;
    });
    if (!gateway) return undefined;
    try {
      const mapped = await withTimeout(`mapping port ${options.port} on ${gateway.description}`, options.timeoutMs, (signal) =>
        gateway.map(options.port, gateway.localAddress, { externalPort: options.port, ttlSeconds: options.ttlSeconds, signal }), deps.signal);
      const mapping = new RouterPortMapping(gateway, mapped.externalHost, mapped.externalPort, options, deps);
      mapping.renewing = mapping.renewLoop();
      deps.log.info({ gateway: gateway.description, externalHost: mapped.externalHost, externalPort: mapped.externalPort, internal: `${gateway.localAddress}:${options.port}` }, 'API port mapped on the router');
      return mapping;
    } catch (err) {
      await gateway.close().catch(() => undefined);
      throw new ProviderError('UPNP_FAILED', `${gateway.description} refused to map port ${options.port}: ${describeError(err)}`, {
        cause: err,
        fix: 'free that port on the router (another device may hold it) or set api.port to another, or configure reachability.relay',
      });
    }
  }

  get gatewayKind(): NatGateway['kind'] {
    return this.gateway.kind;
  }

  get gatewayDescription(): string {
    return this.gateway.description;
  }

  /** Removes the mapping from the router and stops renewing it. */
  async remove(): Promise<void> {
    this.controller.abort();
    await this.renewing;
    try {
      await withTimeout(`removing the mapping of port ${this.options.port}`, this.options.timeoutMs, (signal) => this.gateway.unmap(this.options.port, signal));
      this.deps.log.info({ externalPort: this.externalPort }, 'API port mapping removed from the router');
    } catch (err) {
      this.deps.log.warn({ err: describeError(err) }, 'could not remove the port mapping; the router drops it when its lease runs out');
    } finally {
      await this.gateway.close().catch(() => undefined);
    }
  }

  private async renewLoop(): Promise<void> {
    const { clock, log } = this.deps;
    const signal = this.controller.signal;
    const leaseMs = this.options.ttlSeconds * 1000;
    let wait = leaseMs / 2;
    while (!signal.aborted) {
      try {
        await clock.sleep(wait, signal);
      } catch {
        return;
      }
      try {
        await withTimeout('renewing the port mapping', this.options.timeoutMs, (s) =>
          this.gateway.map(this.options.port, this.gateway.localAddress, { externalPort: this.externalPort, ttlSeconds: this.options.ttlSeconds, signal: s }), signal);
        log.debug({ externalPort: this.externalPort }, 'port mapping renewed');
        wait = leaseMs / 2;
      } catch (err) {
        if (signal.aborted) return;
        log.warn({ err: describeError(err) }, 'renewing the port mapping failed; trying again');
        wait = Math.min(RETRY_MS, leaseMs / 4);
      }
    }
  }
}
