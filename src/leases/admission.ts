import { gpuFilter, type GpuFacts } from './gpu-constraints';
import type { AllocatableGpu } from '../capacity';
import { randomBytes } from 'node:crypto';
import { getAddress, type Signer, type TypedDataDomain } from 'ethers';
import type { AllocationLedger } from '../capacity';
import { hashQuote, manifestHash, signQuote, type Quote } from '../chain';
import type { ProviderConfig } from '../config';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import { checkImagePolicy, parseManifest, pickHostPorts, refuseUnsandboxableLease, type Manifest, type RegistryAuth, type ResolvedImage, type ResolveOptions } from '../runtime';
import { leaseAllocation, leaseRates } from '../settlement';
import type { Store, StoredAllocation, StoredQuote } from '../store';
import type { Clock } from '../util/clock';
import { quoteShareExcess, type HeldAmounts } from './quote-share';

export interface AdmissionDeps {
  config: Pick<ProviderConfig, 'admission' | 'pricing' | 'runtime'>;
  ledger: AllocationLedger;
  store: Store;
  signer: Signer;
  domain: TypedDataDomain;
  provider: string;
  clock: Clock;
  log: Logger;
  /** False while draining: no new quotes. */
  accepting: () => boolean;
  /** Host ports held by leases that are not over, so a quote never gets one twice. */
  portsInUse: () => number[];
  /** Refuses (TENANT_UNFUNDED) a tenant whose balance or allowance to the marketplace is below `deposit`. */
  funding: { require(tenant: string, deposit: bigint, signal?: AbortSignal): Promise<void> };
  /** What the manifest's image is, in its registry or on this host; refuses one that cannot be pulled. */
  images: { resolve(reference: string, options: ResolveOptions): Promise<ResolvedImage> };
  /** What every GPU unit this machine sells is (free or not), and its driver: the gpus constraints are judged on them. */
  gpus?: { units: () => readonly AllocatableGpu[]; facts: () => GpuFacts };
}

export interface AdmittedQuote {
  quote: Quote;
  signature: string;
  quoteHash: string;
  allocation: StoredAllocation;
  /** The image the lease will run, as resolved before the quote was signed. */
  image: ResolvedImage;
}

/**
 * A grace past a quote's expiry during which its capacity stays held (the ledger's quoteGraceMs):
 * the tenant may open the lease in the quote's last second, and we learn of it only once the
 * event is confirmed.
 */
export const QUOTE_HOLD_GRACE_SECONDS = 120;

/** The ledger holder of a quote's reservation, and of the lease it becomes. */
export const quoteHolder = (nonce: string): string => `quote:${nonce}`;
export const leaseHolder = (leaseId: string): string => `lease:${leaseId}`;

function globMatch(pattern: string, text: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
  return re.test(text);
}

/**
 * Admission and pricing: a manifest is quoted only if it passes the schema, this provider's
 * policy and fits what is free now; the capacity is then held until the quote expires, the quote
 * priced from the rate card, signed with the provider key and stored. Registry credentials are
 * kept in memory only, for the pull (a restart loses them; a pull that needs them then fails and
 * says so).
 */
export class Admission {
  private readonly credentials = new Map<string, RegistryAuth>();

  constructor(private readonly deps: AdmissionDeps) {}

  /** Credentials given with the quote `nonce`, if still in memory. */
  registryAuth(nonce: string): RegistryAuth | undefined {
    return this.credentials.get(nonce);
  }

  forgetCredentials(nonce: string): void {
    this.credentials.delete(nonce);
  }

  /** Checks the policy; throws the refusal naming the field. Does not touch the ledger. */
  checkPolicy(tenant: string, manifest: Manifest): void {
    const { admission } = this.deps.config;
    const who = getAddress(tenant);
    if (admission.tenants.deny.some((a) => getAddress(a) === who)) {
      throw new ProviderError('TENANT_DENIED', `tenant ${who} is refused by this provider`, { input: who });
    }
    if (admission.tenants.allow.length > 0 && !admission.tenants.allow.some((a) => getAddress(a) === who)) {
      throw new ProviderError('TENANT_DENIED', `tenant ${who} is not among this provider's allowed tenants`, { input: who });
    }
    checkImagePolicy(manifest.image, admission.images);
    if (manifest.maxDurationSeconds > admission.maxLeaseDurationSeconds) {
      throw new ProviderError(
        'POLICY_REFUSED',
        `maxDurationSeconds: ${manifest.maxDurationSeconds} is over this provider's limit of ${admission.maxLeaseDurationSeconds}`,
        { input: 'maxDurationSeconds' },
      );
    }
    if (admission.maxCpuMillisPerLease !== undefined && manifest.resources.cpuMillis > admission.maxCpuMillisPerLease) {
      throw new ProviderError('POLICY_REFUSED', `resources.cpuMillis: ${manifest.resources.cpuMillis} is over the per-lease limit of ${admission.maxCpuMillisPerLease}`, {
        input: 'resources.cpuMillis',
      });
    }
    if (admission.maxMemoryBytesPerLease !== undefined && manifest.resources.memoryBytes > admission.maxMemoryBytesPerLease) {
      throw new ProviderError(
        'POLICY_REFUSED',
        `resources.memoryBytes: ${manifest.resources.memoryBytes} is over the per-lease limit of ${admission.maxMemoryBytesPerLease}`,
        { input: 'resources.memoryBytes' },
      );
    }
    const gpus = manifest.resources.gpus;
    refuseUnsandboxableLease(this.deps.config.runtime.sandbox, gpus.count);
    if (gpus.count > 0 && admission.gpuModels.length > 0) {
      if (gpus.model === undefined || !admission.gpuModels.some((pattern) => globMatch(pattern, gpus.model as string))) {
        throw new ProviderError('POLICY_REFUSED', `resources.gpus.model: this provider leases only GPU models matching ${admission.gpuModels.join(', ')}`, {
          input: 'resources.gpus.model',
        });
      }
    }
  }

  async quote(tenantAddress: string, input: unknown): Promise<AdmittedQuote> {
    const { ledger, store, clock, config, log } = this.deps;
    this.checkAccepting();
    const manifest = parseManifest(input);
    const tenant = getAddress(tenantAddress);
    this.checkPolicy(tenant, manifest);
    // Quotes hold capacity for free until they lapse: only a tenant that could open the lease gets one.
    await this.deps.funding.require(tenant, minimumDeposit(config.pricing.minimumPerLease));
    const image = await this.deps.images.resolve(manifest.image, {
      ...(manifest.registryAuth ? { registryAuth: manifest.registryAuth } : {}),
      timeoutMs: config.admission.imageResolveTimeoutSeconds * 1000,
    });
    // A drain may have begun while the chain and the registry were asked.
    this.checkAccepting();
    const hash = manifestHash(manifest);
    this.releaseRequoted(tenant, hash);
    this.checkShare(tenant, manifest);

    // 96 bits: the lease id is (provider << 96) | nonce, so a used nonce is a lease that exists.
    const nonce = BigInt(`0x${randomBytes(12).toString('hex')}`);
    const nonceText = nonce.toString();
    const nowSeconds = Math.floor(clock.now() / 1000);
    const expiresAt = nowSeconds + config.pricing.quoteTtlSeconds;
    const hostPorts = pickHostPorts(config.runtime.portRange, this.deps.portsInUse(), (manifest.ports ?? []).length);
    const acceptGpu = this.deps.gpus ? gpuFilter(manifest.resources.gpus, this.deps.gpus.units(), this.deps.gpus.facts()) : undefined;
    const models = new Map(ledger.free().gpus.map((gpu) => [gpu.uuid, gpu.profile ? `${gpu.model} ${gpu.profile}` : gpu.model]));
    // Synchronous from here to the ledger's answer: two racing quotes are served one after the other.
    const held = ledger.reserve({
      holder: quoteHolder(nonceText),
      cpuMillis: manifest.resources.cpuMillis,
      memoryBytes: manifest.resources.memoryBytes,
      diskBytes: manifest.resources.diskBytes ?? 0,
      gpus: manifest.resources.gpus,
      acceptGpu,
      expiresAt: expiresAt * 1000,
    });
    try {
      const allocation: StoredAllocation = {
        cpuMillis: held.cpuMillis,
        memoryBytes: held.memoryBytes,
        diskBytes: held.diskBytes,
        gpuUuids: held.gpuUuids,
        gpuModels: held.gpuUuids.map((uuid) => models.get(uuid) ?? 'unknown'),
        hostPorts,
        registryAuthGiven: manifest.registryAuth !== undefined,
        minimumDeposit: config.pricing.minimumPerLease,
        image: { pinned: image.pinned, digest: image.digest, source: image.source, sizeBytes: image.sizeBytes },
      };
      const rates = leaseRates(config.pricing, allocation);
      const { registryAuth, ...stored } = manifest;
      const quote: Quote = {
        provider: this.deps.provider,
        tenant,
        manifestHash: hash,
        rates,
        allocation: leaseAllocation(config.runtime, {
          cpuMillis: allocation.cpuMillis,
          gpuCount: allocation.gpuUuids.length,
          egress: manifest.egress ?? 'public',
        }),
        maxDuration: BigInt(manifest.maxDurationSeconds),
        expiresAt: BigInt(expiresAt),
        nonce,
      };
      const signature = await signQuote(this.deps.signer, this.deps.domain, quote);
      const quoteHash = hashQuote(this.deps.domain, quote);
      store.quotes.insert({
        nonce: nonceText,
        quoteHash,
        tenant,
        manifest: stored as Record<string, unknown>,
        manifestHash: quote.manifestHash,
        quote,
        signature,
        allocation,
        expiresAt,
        state: 'open',
        createdAt: nowSeconds,
      });
      if (registryAuth) this.credentials.set(nonceText, registryAuth);
      log.info({ tenant, image: manifest.image, digest: image.digest, quoteHash, expiresAt }, 'quote signed');
      return { quote, signature, quoteHash, allocation, image };
    } catch (err) {
      ledger.release(quoteHolder(nonceText));
      throw err;
    }
  }

  private checkAccepting(): void {
    if (!this.deps.accepting()) {
      throw new ProviderError('PROVIDER_DRAINING', 'this provider is draining and takes no new leases', { fix: 'ask another provider, or later' });
    }
  }

  /**
   * A tenant asking again for the same manifest gets a new quote in place of its old ones, whose
   * holds go back at once rather than at expiry. An old quote opened after all is still served
   * when its capacity is free (the inbox takes it again).
   */
  private releaseRequoted(tenant: string, hash: string): void {
    const { store, ledger, log } = this.deps;
    for (const old of this.outstanding(tenant)) {
      if (old.manifestHash !== hash) continue;
      ledger.release(quoteHolder(old.nonce));
      store.quotes.setState(old.nonce, 'released');
      this.forgetCredentials(old.nonce);
      log.info({ tenant, quoteHash: old.quoteHash }, 'quote released: the tenant asked again for the same manifest');
    }
  }

  /** Refuses (QUOTE_SHARE_EXCEEDED) a quote past the tenant's share of free capacity. */
  private checkShare(tenant: string, manifest: Manifest): void {
    const { ledger, config } = this.deps;
    const held: HeldAmounts = { cpuMillis: 0, memoryBytes: 0, gpus: 0 };
    const outstanding = this.outstanding(tenant);
    for (const quote of outstanding) {
      const hold = ledger.get(quoteHolder(quote.nonce));
      if (!hold) continue;
      held.cpuMillis += hold.cpuMillis;
      held.memoryBytes += hold.memoryBytes;
      held.gpus += hold.gpuUuids.length;
    }
    const free = ledger.free();
    const asked = { cpuMillis: manifest.resources.cpuMillis, memoryBytes: manifest.resources.memoryBytes, gpus: manifest.resources.gpus.count };
    const share = config.admission.maxQuoteShare;
    const excess = quoteShareExcess(held, outstanding.length, asked, { cpuMillis: free.cpuMillis, memoryBytes: free.memoryBytes, gpus: free.gpus.length }, share);
    if (!excess) return;
    throw new ProviderError(
      'QUOTE_SHARE_EXCEEDED',
      `tenant ${tenant} would hold ${excess.wouldHold} ${excess.dimension} in ${outstanding.length + 1} open quotes, over its share (${share}) of what is free: ${excess.limit}`,
      { input: excess.dimension, fix: 'open a lease with a quote you hold, or wait for your unused quotes to lapse, before asking for more' },
    );
  }

  /** The tenant's quotes still holding capacity. */
  private outstanding(tenant: string): StoredQuote[] {
    const { store, ledger } = this.deps;
    return store.quotes.open().filter((q) => getAddress(q.tenant) === tenant && ledger.get(quoteHolder(q.nonce)) !== undefined);
  }
}

/** The least deposit openLease takes with this provider's quote: the configured minimum, and never 0 (the chain refuses 0). */
export function minimumDeposit(minimumPerLease: string): bigint {
  const configured = BigInt(minimumPerLease);
  return configured > 0n ? configured : 1n;
}
