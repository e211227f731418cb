import { getAddress, type Provider, type Signer, type TransactionReceipt, type TypedDataDomain } from 'ethers';
import WebSocket from 'ws';
import { z } from 'zod';
import { wire, type CheckpointView, type LeaseView, type LogEntry, type Offer, type QuoteResponse, type UsageView } from '../api';
import { boundedRpc, decodeMarketplaceLog, hashCheckpoint, marketplaceAt, marketplaceDomain, signCheckpoint, tokenAt, type LeaseTerms, type MarketplaceContract, type TokenContract } from '../chain';
import { claimNotDisputable, disputeCalldata, type DisputeOutcome } from './dispute';
import { ProviderError, isProviderError } from '../errors';
import { manifestSchema, type Manifest, type ManifestInput } from '../runtime';
import { systemClock, type Clock } from '../util/clock';
import { ProviderRefusedError, QuoteUntrustedError, UsageUnverifiedError } from './errors';
import { PinnedTransport, type PinSource } from './pinned-transport';
import { registeredPin } from './provider-endpoint';
import { signRequest } from './request-signer';
import { verifyQuote, verifyUsage, type LeaseOnChain, type UsageEvidence, type VerifiedUsage } from './verify';

export interface TenantClientOptions {
  /** The tenant's key, connected to `chain` for transactions. */
  signer: Signer;
  /** The provider's API, e.g. https://203.0.113.7:8420 (http:// only to loopback). */
  apiUrl: string;
  /**
   * SHA-256 of the certificate the provider registered (metadata tls.sha256), or how to read it.
   * Default, with `provider` and `marketplace` given: read from the chain when first needed, and
   * again after a mismatch (a renewal). An https URL with neither is refused (TLS_PIN_MISSING).
   */
  tlsPin?: PinSource;
  chainId: number;
  /** Reads (leases, registrations, receipts). */
  chain: Provider;
  /**
   * The marketplace to pay through. Left out, it is taken from the provider's offer: only do that
   * on a network where the offer's chain id is the one you trust (a provider could name its own
   * contract), i.e. tests and the devnet.
   */
  marketplace?: string;
  /** The payment token; default: the marketplace's `token()`. */
  token?: string;
  /** The provider address expected; default: the offer's, which must be registered on-chain. */
  provider?: string;
  /** Refuse quotes whose unilateral claim cap is above this (token base units per second). */
  maxRatePerSecond?: bigint;
  clock?: Clock;
  requestTimeoutMs?: number;
}

export interface OpenedLease {
  leaseId: bigint;
  txHash: string;
  startedAt: bigint;
}

export interface LogsOptions {
  tail?: number;
  follow?: boolean;
  since?: number;
  signal?: AbortSignal;
}

/** What `quote` returns: the provider's answer, checked, with the manifest it is for. */
export interface VerifiedQuote extends QuoteResponse {
  manifest: Manifest;
}

/**
 * A tenant of one provider, written from the protocol so it checks the provider honestly: every
 * response is decoded through the wire schemas, every quote and usage view is verified (EIP-712
 * signatures, manifest hash, Merkle proofs, pricing, the chain's own view) before it is acted on.
 */
export class TenantClient {
  private readonly clock: Clock;
  /** Each lease's terms as LeaseOpened announced them. */
  private readonly terms = new Map<string, LeaseTerms>();
  private readonly apiUrl: string;
  /** Every request and the log stream go through it: pinned TLS, or plain HTTP to loopback. */
  readonly transport: PinnedTransport;
  private settled: { provider: string; marketplace: MarketplaceContract; token: TokenContract; domain: TypedDataDomain; offer: Offer } | undefined;

  constructor(private readonly options: TenantClientOptions) {
    this.clock = options.clock ?? systemClock;
    this.apiUrl = options.apiUrl.replace(/\/+$/, '');
    const { provider, marketplace } = options;
    const fromChain = provider && marketplace ? () => registeredPin(marketplaceAt(marketplace, options.chain), provider) : undefined;
    this.transport = new PinnedTransport(this.apiUrl, options.tlsPin ?? fromChain);
  }

  async address(): Promise<string> {
    return getAddress(await this.options.signer.getAddress());
  }

  /** GET /v1/offer, checked against our chain and (once) the provider's on-chain registration. */
  async offer(signal?: AbortSignal): Promise<Offer> {
    const offer = await this.call('GET', '/v1/offer', undefined, wire.offerWire, { signed: false, signal });
    if (offer.chainId !== this.options.chainId) {
      throw new ProviderError('CHAIN_ID_MISMATCH', `provider offers on chain ${offer.chainId}, we are on ${this.options.chainId}`);
    }
    if (this.options.provider && getAddress(offer.provider) !== getAddress(this.options.provider)) {
      throw new QuoteUntrustedError('wrong-provider', `offer is from ${offer.provider}, we expected ${this.options.provider}`);
    }
    if (this.options.marketplace && getAddress(offer.marketplace) !== getAddress(this.options.marketplace)) {
      throw new ProviderError('CHAIN_ID_MISMATCH', `provider uses marketplace ${offer.marketplace}, we use ${this.options.marketplace}`);
    }
    return offer;
  }

  /** POST /v1/quotes, then verifies the quote; throws QUOTE_UNTRUSTED with the fault. */
  async quote(manifest: ManifestInput, signal?: AbortSignal): Promise<VerifiedQuote> {
    const sent = manifestSchema.parse(manifest);
    const ctx = await this.context(signal);
    // A provider quotes only a tenant whose allowance already covers its minimum deposit.
    const floor = depositFloor(ctx.offer);
    const me = await this.address();
    if ((await ctx.token.read('allowance', [me, ctx.marketplace.address], { ...(signal ? { signal } : {}) })) < floor) {
      await this.transact(ctx.token, ctx.token.encode('approve', [ctx.marketplace.address, floor]), 'approve');
    }
    const response = await this.call('POST', '/v1/quotes', sent, wire.quoteResponseWire, { signal });
    verifyQuote(response, {
      domain: ctx.domain,
      provider: ctx.provider,
      tenant: await this.address(),
      manifest: sent,
      now: Math.floor(this.clock.now() / 1000),
      rateCard: ctx.offer.rateCard,
      ...(this.options.maxRatePerSecond === undefined ? {} : { maxRatePerSecond: this.options.maxRatePerSecond }),
    });
    return { ...response, manifest: sent };
  }

  /**
   * Approves the deposit (when the allowance is short) and opens the lease on-chain. The approval
   * leaves the provider's minimum deposit approved after the open, so the next quote needs none.
   */
  async open(quote: QuoteResponse, deposit: bigint): Promise<OpenedLease> {
    const ctx = await this.context();
    const me = await this.address();
    const allowance = await ctx.token.read('allowance', [me, ctx.marketplace.address]);
    if (allowance < deposit) await this.transact(ctx.token, ctx.token.encode('approve', [ctx.marketplace.address, deposit + depositFloor(ctx.offer)]), 'approve');
    const receipt = await this.transact(ctx.marketplace, ctx.marketplace.encode('openLease', [quote.quote, quote.signature, deposit]), 'openLease');
    for (const log of receipt.logs) {
      if (getAddress(log.address) !== getAddress(ctx.marketplace.address)) continue;
      const event = ctx.marketplace.parseLog(log);
      if (event?.name !== 'LeaseOpened') continue;
      const opened = decodeMarketplaceLog(ctx.marketplace, log);
      if (opened?.name !== 'LeaseOpened') continue;
      // Every later call about the lease passes its terms back: kept as the chain announced them.
      this.terms.set(opened.args.leaseId.toString(), opened.args.terms);
      return { leaseId: opened.args.leaseId, txHash: receipt.hash, startedAt: opened.args.terms.startedAt };
    }
    throw new ProviderError('EVENT_INVALID', `openLease ${receipt.hash} emitted no LeaseOpened`);
  }

  lease(leaseId: bigint | string, signal?: AbortSignal): Promise<LeaseView> {
    return this.call('GET', `/v1/leases/${leaseId}`, undefined, wire.leaseViewWire, { signal });
  }

  usage(leaseId: bigint | string, signal?: AbortSignal): Promise<UsageView> {
    return this.call('GET', `/v1/leases/${leaseId}/usage`, undefined, wire.usageViewWire, { signal });
  }

  /** Verifies a usage view against the protocol and what the chain holds for the lease. */
  async verifyUsage(view: UsageView, leaseId: bigint | string = view.leaseId): Promise<VerifiedUsage> {
    const ctx = await this.context();
    const chain = await this.leaseOnChain(BigInt(leaseId));
    if (getAddress(chain.terms.tenant) !== (await this.address())) {
      throw new UsageUnverifiedError('chain-mismatch', `lease ${leaseId} belongs to ${chain.terms.tenant} on-chain`);
    }
    return verifyUsage(view, { domain: ctx.domain, provider: ctx.provider, leaseId: BigInt(leaseId), terms: chain.terms, chain });
  }

  /** Fetches and verifies the usage, then countersigns checkpoint `seq` (for `redeem`). */
  async countersign(leaseId: bigint | string, seq: bigint | number, signal?: AbortSignal): Promise<CheckpointView> {
    const ctx = await this.context(signal);
    const view = await this.usage(leaseId, signal);
    await this.verifyUsage(view, leaseId);
    const target = view.checkpoints.find((c) => c.seq === Number(seq));
    if (!target) throw new UsageUnverifiedError('no-checkpoint', `no checkpoint ${seq} in the usage view`, BigInt(seq));
    const signature = await signCheckpoint(this.options.signer, ctx.domain, target.checkpoint);
    const stored = await this.call('POST', `/v1/leases/${leaseId}/checkpoints/${seq}/countersign`, { signature }, wire.checkpointViewWire, { signal });
    if (stored.tenantSignature?.toLowerCase() !== signature.toLowerCase() || stored.checkpoint.usageRoot !== target.checkpoint.usageRoot) {
      throw new ProviderError('PROVIDER_RESPONSE_INVALID', `provider answered countersign ${seq} with another checkpoint or signature`);
    }
    return stored;
  }

  /** Closes the lease on-chain (`closeLease`); the provider stops it within one follower poll. */
  async close(leaseId: bigint | string): Promise<{ txHash: string; closedAt: bigint }> {
    const ctx = await this.context();
    const { terms } = await this.leaseOnChain(BigInt(leaseId));
    const receipt = await this.transact(ctx.marketplace, ctx.marketplace.encode('closeLease', [BigInt(leaseId), terms]), 'closeLease');
    const event = receipt.logs.map((log) => ctx.marketplace.parseLog(log)).find((e) => e?.name === 'LeaseClosed');
    return { txHash: receipt.hash, closedAt: (event?.args.getValue('end') as bigint | undefined) ?? 0n };
  }

  /**
   * Checks the lease's usage view and files the dispute its evidence supports (the contract
   * upholds it: the claim is dropped and the provider slashed), or says the view verifies. Throws
   * the view's USAGE_UNVERIFIED when it is refused without evidence the chain takes (a bad
   * signature or proof, a record not served), and CLAIM_NOT_DISPUTABLE when records disprove a
   * checkpoint that is not the pending claim in its challenge window (nothing to dispute yet).
   */
  async dispute(leaseId: bigint | string, signal?: AbortSignal): Promise<DisputeOutcome> {
    const ctx = await this.context(signal);
    const view = await this.usage(leaseId, signal);
    let refusal: UsageUnverifiedError;
    try {
      const verified = await this.verifyUsage(view, leaseId);
      return { filed: false, checkpoint: verified.latest.seq, records: Number(verified.latest.checkpoint.recordCount), total: verified.total };
    } catch (err) {
      if (!(err instanceof UsageUnverifiedError) || !err.evidence) throw err;
      refusal = err;
    }
    const evidence = refusal.evidence as UsageEvidence;
    const chain = await this.leaseOnChain(BigInt(leaseId));
    const call = disputeCalldata(ctx.marketplace, chain.terms, evidence, view.records);
    if (!call) throw refusal;
    const seq = evidence.kind === 'equivocation' ? evidence.b.seq : evidence.checkpoint.seq;
    if (evidence.kind === 'records') {
      const head = await boundedRpc('getBlock(latest)', { signal }, () => this.options.chain.getBlock('latest'));
      const why = claimNotDisputable(chain, hashCheckpoint(ctx.domain, evidence.checkpoint.checkpoint), BigInt(head?.timestamp ?? 0));
      if (why) {
        throw new ProviderError('CLAIM_NOT_DISPUTABLE', `checkpoint ${seq} of lease ${leaseId} is disproved (${call.what}) but cannot be disputed: ${why}`, {
          input: { leaseId: leaseId.toString(), seq },
          fix: 'do not countersign it; a dispute is filed against the pending claim of that checkpoint within its challenge window: run `provider dispute` again once the provider claims it',
        });
      }
    }
    const receipt = await this.transact(ctx.marketplace, call.data, `dispute (${call.what})`);
    return { filed: true, checkpoint: seq, fault: call.what, evidence: evidence.kind === 'equivocation' ? 'equivocation' : (evidence.dispute.kind as 'record' | 'pair'), txHash: receipt.hash };
  }

  /** WS /v1/leases/:id/logs: the lease's lines until the stream's end message. */
  async *logs(leaseId: bigint | string, options: LogsOptions = {}): AsyncGenerator<LogEntry> {
    const search = new URLSearchParams();
    if (options.tail !== undefined) search.set('tail', String(options.tail));
    if (options.follow) search.set('follow', '1');
    if (options.since !== undefined) search.set('since', String(options.since));
    const query = search.toString();
    const path = `/v1/leases/${leaseId}/logs${query ? `?${query}` : ''}`;
    const headers = await signRequest(this.options.signer, this.options.chainId, 'GET', path, '');
    const ws = new WebSocket(this.transport.webSocketUrl(path), { headers, handshakeTimeout: this.options.requestTimeoutMs ?? 30_000, ...(await this.transport.webSocketOptions()) });
    const queue: LogEntry[] = [];
    let done = false;
    let failure: unknown;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      wake?.();
      wake = undefined;
    };
    const onAbort = (): void => ws.terminate();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        failure = refusal(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'));
        done = true;
        ws.terminate();
        notify();
      });
    });
    ws.on('message', (data: Buffer) => {
      let message: unknown;
      try {
        message = JSON.parse(data.toString('utf8'));
      } catch {
        message = undefined;
      }
      const parsed = wire.logMessageWire.safeParse(message);
      if (!parsed.success) {
        failure = new ProviderError('PROVIDER_RESPONSE_INVALID', 'log stream sent a message that is not a log line');
        done = true;
      } else if ('end' in parsed.data) {
        if (parsed.data.reason === 'error') {
          const error = parsed.data.error ?? { code: 'INTERNAL', message: 'log stream failed' };
          failure = new ProviderRefusedError(200, error.code, error.message);
        }
        done = true;
      } else {
        queue.push(parsed.data);
        // Backpressure: stop reading the socket while the consumer is behind.
        if (queue.length > 1000) ws.pause();
      }
      notify();
    });
    ws.on('error', (err) => {
      if (!failure && !done) failure = isProviderError(err) ? err : new ProviderError('PROVIDER_UNREACHABLE', `log stream: ${err.message}`, { cause: err });
      done = true;
      notify();
    });
    ws.on('close', () => {
      if (!done && !failure) failure = new ProviderError('PROVIDER_RESPONSE_INVALID', 'log stream closed without its end message');
      done = true;
      notify();
    });
    try {
      for (;;) {
        const next = queue.shift();
        if (next) {
          if (queue.length < 100 && ws.isPaused) ws.resume();
          yield next;
          continue;
        }
        if (done) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      options.signal?.throwIfAborted();
      if (failure) throw failure;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
    }
  }

  /** What the chain holds for the lease, with its terms (kept from LeaseOpened, else looked up in the chain's logs). */
  async leaseOnChain(leaseId: bigint): Promise<LeaseOnChain> {
    const ctx = await this.context();
    const lease = await ctx.marketplace.read('getLease', [leaseId]);
    if (BigInt(lease.termsHash) === 0n) throw new ProviderError('LEASE_NOT_FOUND', `lease ${leaseId} does not exist on-chain`);
    const terms = this.terms.get(leaseId.toString()) ?? (await this.openedTerms(ctx.marketplace, leaseId));
    return { terms, end: BigInt(lease.end), paid: BigInt(lease.paid), pending: BigInt(lease.pending), payableAt: BigInt(lease.payableAt), claimDigest: lease.claimDigest };
  }

  private async openedTerms(marketplace: MarketplaceContract, leaseId: bigint): Promise<LeaseTerms> {
    const topic = marketplace.interface.getEvent('LeaseOpened')?.topicHash;
    const logs = await boundedRpc('getLogs(LeaseOpened)', {}, () =>
      this.options.chain.getLogs({ address: marketplace.address, topics: [topic ?? null, `0x${leaseId.toString(16).padStart(64, '0')}`], fromBlock: 0 }),
    );
    for (const log of logs) {
      const event = decodeMarketplaceLog(marketplace, log);
      if (event?.name === 'LeaseOpened') {
        this.terms.set(leaseId.toString(), event.args.terms);
        return event.args.terms;
      }
    }
    throw new ProviderError('LEASE_NOT_FOUND', `no LeaseOpened for lease ${leaseId} on ${marketplace.address}`);
  }

  /** Marketplace, token, EIP-712 domain and the provider's address, settled once. */
  private async context(signal?: AbortSignal): Promise<NonNullable<TenantClient['settled']>> {
    if (this.settled) return this.settled;
    const offer = await this.offer(signal);
    const marketplace = marketplaceAt(this.options.marketplace ?? offer.marketplace, this.options.chain);
    const provider = getAddress(this.options.provider ?? offer.provider);
    const registration = await marketplace.read('getProvider', [provider]);
    // ProviderStatus.Active: openLease refuses any other, and only a bonded provider is worth paying.
    if (Number(registration.status) !== 1) throw new QuoteUntrustedError('provider-not-registered', `${provider} is not an active provider on ${marketplace.address}`);
    const tokenAddress = this.options.token ?? (await marketplace.read('token', []));
    this.settled = {
      provider,
      marketplace,
      token: tokenAt(tokenAddress, this.options.chain),
      domain: marketplaceDomain(this.options.chainId, marketplace.address),
      offer,
    };
    return this.settled;
  }

  private async transact(contract: MarketplaceContract | TokenContract, data: string, what: string): Promise<TransactionReceipt> {
    let receipt: TransactionReceipt | null;
    try {
      // An exact estimate sometimes falls short inside the token transfer (anvil, ~1 open in 15):
      // the headroom costs nothing, since unused gas is not charged.
      const request = { to: contract.address, data };
      const estimate = await this.options.signer.estimateGas(request);
      const tx = await this.options.signer.sendTransaction({ ...request, gasLimit: (estimate * 13n) / 10n });
      receipt = await tx.wait();
    } catch (err) {
      const revert = contract.describeRevert((err as { data?: string }).data ?? (err as { info?: { error?: { data?: string } } }).info?.error?.data);
      throw new ProviderError('TX_REVERTED', `${what} reverted${revert ? `: ${revert}` : `: ${(err as Error).message}`}`, { cause: err, input: revert });
    }
    if (!receipt || receipt.status !== 1) throw new ProviderError('TX_REVERTED', `${what} reverted`, { input: receipt?.hash });
    return receipt;
  }

  private async call<T>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    schema: z.ZodType<T, unknown>,
    options: { signed?: boolean; signal?: AbortSignal | undefined },
  ): Promise<T> {
    const text = body === undefined ? '' : JSON.stringify(body);
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    if (options.signed ?? true) Object.assign(headers, await signRequest(this.options.signer, this.options.chainId, method, path, text));
    const timeout = AbortSignal.timeout(this.options.requestTimeoutMs ?? 30_000);
    let res: Response;
    try {
      res = await this.transport.fetch(`${this.apiUrl}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: text }),
        signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
      });
    } catch (err) {
      options.signal?.throwIfAborted();
      // A pin refused, or no pin to check: not "unreachable", and its fix is another one.
      if (isProviderError(err)) throw err;
      throw new ProviderError('PROVIDER_UNREACHABLE', `${method} ${path}: ${(err as Error).message}`, { cause: err, fix: 'check the provider API URL and that it is up' });
    }
    const raw = await res.text();
    if (!res.ok) throw refusal(res.status, raw);
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new ProviderError('PROVIDER_RESPONSE_INVALID', `${method} ${path}: response is not JSON`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ProviderError('PROVIDER_RESPONSE_INVALID', `${method} ${path}: ${issue ? `${issue.path.join('.') || '(body)'}: ${issue.message}` : 'invalid'}`);
    }
    return parsed.data;
  }
}

/** A provider's error answer (status and JSON body) as the error the client throws. */
export function refusal(status: number, raw: string): ProviderError {
  const error = wire.decodeErrorBody(raw);
  if (!error) return new ProviderRefusedError(status, 'UNKNOWN', raw.slice(0, 200) || `HTTP ${status}`);
  const { code, message, fix } = error;
  return new ProviderRefusedError(status, code, message, fix ? { fix } : {});
}

/** The least deposit a provider's quote takes (its minimumPerLease, never 0): what its quotes ask the tenant to have approved. */
function depositFloor(offer: Offer): bigint {
  const minimum = BigInt(offer.rateCard.minimumPerLease);
  return minimum > 0n ? minimum : 1n;
}
