import { getAddress } from 'ethers';
import type { AllocationLedger } from '../capacity';
import { canonicalJson, quoteNonceOf, Wakeup, type MarketplaceEvent } from '../chain';
import type { ProviderConfig } from '../config';
import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Store, StoredLease } from '../store';
import type { Clock } from '../util/clock';
import { leaseHolder, quoteHolder } from './admission';
import type { LeaseEvent } from './state-machine';

export interface ChainInboxDeps {
  config: Pick<ProviderConfig, 'pricing'>;
  store: Store;
  ledger: AllocationLedger;
  /** The provider's address: events for anyone else are not ours. */
  provider: string;
  /** Our lease's name towards the backend. */
  runtimeId: (leaseId: string) => string;
  clock: Clock;
  log: Logger;
  dispatch: (leaseId: string, event: LeaseEvent, reason: string) => Promise<void>;
  /** The settlement loop has work (a close, a redeem, a claim made final). */
  wakeSettlement: () => void;
}

const LEASE_EVENTS = new Set(['LeaseClosed', 'CheckpointRedeemed', 'ClaimSubmitted', 'ClaimFinalized', 'LeaseSettled']);

/**
 * The marketplace's events, in two halves. `onChainEvents` runs inside the event follower's
 * SQLite transaction and only writes (the lease row, the inbox); `run` then acts on the inbox
 * in order and marks each event handled once acted on, so a crash replays what was cut short.
 */
export class ChainInbox {
  private readonly wakeup = new Wakeup();

  constructor(private readonly deps: ChainInboxDeps) {}

  readonly onChainEvents = (events: readonly MarketplaceEvent[]): void => {
    const { store, clock, provider } = this.deps;
    const now = Math.floor(clock.now() / 1000);
    let any = false;
    for (const event of events) {
      if (event.name === 'LeaseOpened') {
        const args = event.args;
        if (getAddress(args.provider) !== getAddress(provider)) continue;
        const leaseId = args.leaseId.toString();
        // The lease id is (provider << 96) | the quote's nonce: the nonce names our quote.
        const quote = store.quotes.get(quoteNonceOf(args.leaseId).toString());
        store.leases.insert(
          {
            leaseId,
            runtimeId: this.deps.runtimeId(leaseId),
            quoteNonce: quote ? quote.nonce : null,
            tenant: getAddress(args.tenant),
            manifestHash: args.manifestHash,
            deposit: args.terms.deposit,
            rates: args.terms.rates,
            allocation: args.terms.allocation,
            maxDuration: Number(args.maxDuration),
            openedAt: Number(args.terms.startedAt),
            state: 'quoted',
            endReason: null,
            exitCode: null,
            detail: `opened on-chain in block ${event.blockNumber}`,
            closedAt: null,
            containerId: null,
            startedAt: null,
            endedAt: null,
            imageDigest: null,
            timeline: null,
            resultDigest: null,
            logsSha256: null,
            updatedAt: now,
          },
          { fromState: 'quoted', toState: 'quoted', event: 'lease-opened', reason: `LeaseOpened in block ${event.blockNumber}`, at: now },
        );
        store.inbox.add({ name: event.name, leaseId, args: args as unknown as Record<string, unknown>, blockNumber: event.blockNumber, logIndex: event.logIndex });
        any = true;
      } else if (event.name === 'Withdrawn') {
        if (getAddress(event.args.provider) !== getAddress(provider)) continue;
        // Counted in the follower's transaction: exactly once, across restarts.
        store.meta.set('withdrawn-total', (BigInt(store.meta.get('withdrawn-total') ?? '0') + event.args.amount).toString());
      } else if (LEASE_EVENTS.has(event.name)) {
        const args = event.args as { leaseId: bigint; end?: bigint };
        const leaseId = args.leaseId.toString();
        if (!store.leases.get(leaseId)) continue;
        // The end of billable time is known from here on, before the inbox is worked through.
        if (event.name === 'LeaseClosed') store.leases.update(leaseId, { closedAt: Number(args.end) });
        store.inbox.add({ name: event.name, leaseId, args: event.args as unknown as Record<string, unknown>, blockNumber: event.blockNumber, logIndex: event.logIndex });
        any = true;
      }
    }
    if (any) queueMicrotask(() => this.wakeup.wake());
  };

  wake(): void {
    this.wakeup.wake();
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for (const event of this.deps.store.inbox.open()) {
          if (signal.aborted) break;
          await this.handle(event.name, event.leaseId, event.args);
          this.deps.store.inbox.markHandled(event.id);
        }
      } catch (err) {
        if (!signal.aborted) this.deps.log.error({ err: describeError(err) }, 'handling a marketplace event failed; retrying');
      }
      await this.wakeup.wait(2_000, signal).catch(() => undefined);
    }
  }

  private async handle(name: string, leaseId: string | null, args: Record<string, unknown>): Promise<void> {
    if (!leaseId) return;
    const { store, dispatch, wakeSettlement } = this.deps;
    const lease = store.leases.get(leaseId);
    if (!lease) return;
    switch (name) {
      case 'LeaseOpened':
        if (lease.state === 'quoted') await this.admit(lease);
        return;
      case 'LeaseClosed': {
        const closedAt = Number(args.end as bigint);
        store.leases.update(leaseId, { closedAt });
        if (getAddress(String(args.by)) !== getAddress(this.deps.provider)) {
          await dispatch(leaseId, { type: 'end-requested', reason: 'tenant-closed' }, `the tenant closed the lease on-chain at ${closedAt}`);
        }
        wakeSettlement();
        return;
      }
      case 'CheckpointRedeemed':
        store.checkpoints.setStatus(leaseId, Number(args.seq as bigint), 'final');
        return;
      case 'ClaimSubmitted':
        store.checkpoints.setStatus(leaseId, Number(args.seq as bigint), 'claimed');
        return;
      case 'ClaimFinalized':
        store.checkpoints.setStatus(leaseId, Number(args.seq as bigint), 'final');
        wakeSettlement();
        return;
      case 'LeaseSettled':
        wakeSettlement();
        return;
      default:
        return;
    }
  }

  /** A LeaseOpened for us: run it only if it is our quote, for this tenant and manifest, with its capacity. */
  private async admit(lease: StoredLease): Promise<void> {
    const { store, ledger, config, dispatch } = this.deps;
    const quote = lease.quoteNonce ? store.quotes.get(lease.quoteNonce) : undefined;
    const refuse = (detail: string) => dispatch(lease.leaseId, { type: 'refused', detail }, detail);
    if (!quote) return void (await refuse('opened with a quote this provider did not issue'));
    if (quote.manifestHash !== lease.manifestHash) return void (await refuse('manifest hash differs from the quoted manifest'));
    if (getAddress(quote.tenant) !== getAddress(lease.tenant)) return void (await refuse('opened by another tenant than the quote names'));
    if (canonicalJson(quote.quote.allocation) !== canonicalJson(lease.allocation)) return void (await refuse('the allocation differs from the quoted one'));
    const minimum = BigInt(quote.allocation.minimumDeposit ?? config.pricing.minimumPerLease);
    if (lease.deposit < minimum) return void (await refuse(`deposit ${lease.deposit} is below this provider's minimum per lease (${minimum})`));
    try {
      ledger.promote(quoteHolder(quote.nonce), leaseHolder(lease.leaseId));
    } catch {
      // The hold lapsed (a late open, or a restart long after): take the capacity again if it is free.
      try {
        const held = ledger.reserve({
          holder: leaseHolder(lease.leaseId),
          cpuMillis: quote.allocation.cpuMillis,
          memoryBytes: quote.allocation.memoryBytes,
          diskBytes: quote.allocation.diskBytes,
          gpus: { count: quote.allocation.gpuUuids.length, model: quote.allocation.gpuModels[0] },
          expiresAt: Number.MAX_SAFE_INTEGER,
        });
        ledger.release(held.holder);
        ledger.restore([{ ...held, kind: 'lease', expiresAt: null }]);
      } catch (err) {
        return void (await refuse(`the quote's capacity is no longer held: ${describeError(err)}`));
      }
    }
    store.quotes.setState(quote.nonce, 'used');
    await dispatch(lease.leaseId, { type: 'opened' }, `tenant ${lease.tenant} opened the lease with quote ${quote.quoteHash.slice(0, 10)}`);
  }
}
