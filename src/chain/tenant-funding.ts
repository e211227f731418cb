import { getAddress } from 'ethers';
import { ProviderError } from '../errors';
import type { Clock } from '../util/clock';
import type { TokenContract } from './marketplace';

export interface TenantFundingOptions {
  token: TokenContract;
  /** The marketplace the tenant's allowance must be given to. */
  marketplace: string;
  clock: Clock;
  /** How long a read is trusted; 0 reads the chain at every quote. */
  cacheMs: number;
  /** Each read's bound: RPC_TIMEOUT past it. */
  timeoutMs?: number;
  /** Tenants remembered at most; the oldest read is forgotten first. */
  maxEntries?: number;
}

/** What a tenant could deposit now: the lesser of its token balance and its allowance to the marketplace. */
export interface TenantFunds {
  balance: bigint;
  allowance: bigint;
  /** Epoch ms of the read. */
  readAt: number;
}

const READ_TIMEOUT_MS = 5_000;
const MAX_ENTRIES = 10_000;

/**
 * Whether a tenant could open the lease it asks a quote for: its balance and its allowance to
 * the marketplace both cover the deposit. Reads are cached per tenant for a short while, and a read
 * in flight is shared, so a flood of quotes from one key costs one RPC read per `cacheMs`.
 */
export class TenantFunding {
  private readonly cache = new Map<string, TenantFunds>();
  private readonly inFlight = new Map<string, Promise<TenantFunds>>();

  constructor(private readonly options: TenantFundingOptions) {}

  /** Throws TENANT_UNFUNDED naming what is short, with the fix; RPC_TIMEOUT/RPC errors pass through. */
  async require(tenantAddress: string, deposit: bigint, signal?: AbortSignal): Promise<void> {
    const tenant = getAddress(tenantAddress);
    const funds = await this.funds(tenant, signal);
    if (funds.balance >= deposit && funds.allowance >= deposit) return;
    const short = funds.balance < deposit ? `its token balance is ${funds.balance}` : `its allowance to the marketplace is ${funds.allowance}`;
    throw new ProviderError('TENANT_UNFUNDED', `tenant ${tenant} could not pay the minimum deposit of ${deposit} token base units: ${short}`, {
      input: tenant,
      fix:
        `hold at least ${deposit} tokens and approve the marketplace ${this.options.marketplace} for them ` +
        `(token.approve(${this.options.marketplace}, amount)) before asking for a quote; a new balance is seen within ${Math.ceil(this.options.cacheMs / 1000)} s`,
    });
  }

  async funds(tenant: string, signal?: AbortSignal): Promise<TenantFunds> {
    const now = this.options.clock.now();
    const cached = this.cache.get(tenant);
    if (cached && now - cached.readAt < this.options.cacheMs) return cached;
    const pending = this.inFlight.get(tenant);
    if (pending) return pending;
    const read = this.read(tenant, signal).finally(() => this.inFlight.delete(tenant));
    this.inFlight.set(tenant, read);
    return read;
  }

  private async read(tenant: string, signal: AbortSignal | undefined): Promise<TenantFunds> {
    const { token, marketplace, clock } = this.options;
    const bounds = { timeoutMs: this.options.timeoutMs ?? READ_TIMEOUT_MS, ...(signal ? { signal } : {}) };
    const [balance, allowance] = await Promise.all([token.read('balanceOf', [tenant], bounds), token.read('allowance', [tenant, marketplace], bounds)]);
    const funds = { balance, allowance, readAt: clock.now() };
    this.cache.delete(tenant);
    this.cache.set(tenant, funds);
    while (this.cache.size > (this.options.maxEntries ?? MAX_ENTRIES)) this.cache.delete(this.cache.keys().next().value as string);
    return funds;
  }
}
