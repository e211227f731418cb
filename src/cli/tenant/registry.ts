import { getAddress, type Provider } from 'ethers';
import { z } from 'zod';
import { boundedRpc, decodeMarketplaceLog, type MarketplaceContract } from '../../chain';
import { ProviderError } from '../../errors';
import { pinFromMetadata } from '../../tenant';

/**
 * The marketplace's provider registry and a tenant's leases as the chain tells them: registrations
 * from ProviderRegistered/ProviderUpdated (the current apiUrl and metadata from getProvider), leases
 * from LeaseOpened with the tenant's address as topic. Logs are read in bounded block ranges.
 */

/** Blocks per getLogs: public nodes refuse wide ranges. */
const LOG_RANGE = 50_000;
/** The most ranges one scan reads (5M blocks): a wider history needs network.startBlock. */
const MAX_RANGES = 100;

export interface Registration {
  provider: string;
  apiUrl: string;
  metadata: string;
  active: boolean;
}

const metadataSchema = z.object({ region: z.string().max(64).optional() }).loose();

/** What a tenant reads of a provider's metadata: its region and the TLS pin it published (tls.sha256). */
export function readMetadata(metadata: string): { region: string | null; tlsPin: string | null } {
  const tlsPin = pinFromMetadata(metadata) ?? null;
  let json: unknown;
  try {
    json = JSON.parse(metadata);
  } catch {
    return { region: null, tlsPin };
  }
  const parsed = metadataSchema.safeParse(json);
  return { region: parsed.success ? (parsed.data.region ?? null) : null, tlsPin };
}

export class ChainDirectory {
  constructor(
    private readonly rpc: Provider,
    private readonly marketplace: MarketplaceContract,
    private readonly fromBlock: number,
  ) {}

  /** Every provider that ever registered, with its current registration (active or not). */
  async registrations(signal?: AbortSignal): Promise<Registration[]> {
    const registered = this.topic('ProviderRegistered');
    const updated = this.topic('ProviderUpdated');
    const logs = await this.scan([[registered, updated]], signal);
    const addresses = new Set<string>();
    for (const log of logs) {
      const event = decodeMarketplaceLog(this.marketplace, log);
      if (event?.name === 'ProviderRegistered' || event?.name === 'ProviderUpdated') addresses.add(getAddress(event.args.provider));
    }
    return Promise.all([...addresses].map((provider) => this.registration(provider, signal)));
  }

  async registration(provider: string, signal?: AbortSignal): Promise<Registration> {
    const info = (await this.marketplace.read('getProvider', [provider], signal ? { signal } : {})) as unknown as { apiUrl: string; metadata: string; status: bigint };
    // ProviderStatus.Active is 1: openLease refuses any other.
    return { provider: getAddress(provider), apiUrl: info.apiUrl, metadata: info.metadata, active: Number(info.status) === 1 };
  }

  /** The API URL a lease's provider registered; the provider is the lease id's top 160 bits. */
  async apiUrlOfLease(leaseId: bigint, signal?: AbortSignal): Promise<{ provider: string; apiUrl: string }> {
    const provider = getAddress(`0x${(leaseId >> 96n).toString(16).padStart(40, '0')}`);
    const registration = await this.registration(provider, signal);
    if (!registration.apiUrl) {
      throw new ProviderError('LEASE_NOT_FOUND', `lease ${leaseId} names provider ${provider}, which has no registration on ${this.marketplace.address}`, {
        fix: 'check the lease id (`provider tenant leases`), or pass --api-url of its provider',
      });
    }
    return { provider, apiUrl: registration.apiUrl };
  }

  /** The tenant's leases, oldest first: id, provider and the block they were opened in. */
  async leasesOf(tenant: string, signal?: AbortSignal): Promise<{ leaseId: bigint; provider: string; maxDuration: bigint; deposit: bigint; startedAt: bigint; blockNumber: number }[]> {
    const tenantTopic = `0x${getAddress(tenant).slice(2).toLowerCase().padStart(64, '0')}`;
    const logs = await this.scan([this.topic('LeaseOpened'), null, null, tenantTopic], signal);
    const out = [];
    for (const log of logs) {
      const event = decodeMarketplaceLog(this.marketplace, log);
      if (event?.name !== 'LeaseOpened') continue;
      out.push({
        leaseId: event.args.leaseId,
        provider: event.args.provider,
        maxDuration: event.args.maxDuration,
        deposit: event.args.terms.deposit,
        startedAt: event.args.terms.startedAt,
        blockNumber: log.blockNumber,
      });
    }
    return out;
  }

  /**
   * What settled leases paid and refunded (LeaseSettled): the marketplace clears a settled lease's
   * slot, so getLease reads zero for it and the event is the record.
   */
  async settlementsOf(leaseIds: readonly bigint[], signal?: AbortSignal): Promise<Map<bigint, { paid: bigint; refund: bigint }>> {
    const out = new Map<bigint, { paid: bigint; refund: bigint }>();
    if (leaseIds.length === 0) return out;
    const idTopics = leaseIds.map((id) => `0x${id.toString(16).padStart(64, '0')}`);
    for (const log of await this.scan([this.topic('LeaseSettled'), idTopics], signal)) {
      const event = decodeMarketplaceLog(this.marketplace, log);
      if (event?.name === 'LeaseSettled') out.set(event.args.leaseId, { paid: event.args.paid, refund: event.args.refund });
    }
    return out;
  }

  private topic(name: string): string {
    const topic = this.marketplace.interface.getEvent(name)?.topicHash;
    if (!topic) throw new Error(`the marketplace ABI has no ${name} event`);
    return topic;
  }

  private async scan(topics: (string | string[] | null)[], signal?: AbortSignal) {
    const head = await boundedRpc('getBlockNumber', signal ? { signal } : {}, () => this.rpc.getBlockNumber());
    const logs = [];
    let from = Math.max(this.fromBlock, head - LOG_RANGE * MAX_RANGES);
    while (from <= head) {
      const to = Math.min(head, from + LOG_RANGE - 1);
      const range = { from, to };
      logs.push(...(await boundedRpc(`getLogs(${range.from}-${range.to})`, signal ? { signal } : {}, () => this.rpc.getLogs({ address: this.marketplace.address, topics, fromBlock: range.from, toBlock: range.to }))));
      from = to + 1;
    }
    return logs;
  }
}
