import type Docker from 'dockerode';
import { ProviderError } from '../errors';
import { boundedCall } from './bounded-call';
import { engineMessage } from './docker-errors';
import { checkImagePolicy } from './image-policy';
import { pullRef } from './image-ref';
import { pullError, type ImageService, type ImageSettings } from './images';
import type { RegistryAuth } from './manifest';

/** What a quote names and its lease will run. */
export interface ResolvedImage {
  /** The image as the tenant wrote it. */
  reference: string;
  /**
   * What the lease pulls and runs: `repository@sha256:...` for a registry image (a tag moved since
   * the quote cannot change it), the reference itself for an image built on this host.
   */
  pinned: string;
  /** The registry's manifest digest (`repository@sha256:...`), or the local image id. */
  digest: string;
  source: 'registry' | 'local';
  /** Unpacked size when the engine knows it (local images, registry images already pulled); else checked at the pull. */
  sizeBytes: number | null;
}

export interface ResolveOptions {
  registryAuth?: RegistryAuth;
  signal?: AbortSignal;
  timeoutMs: number;
}

interface DistributionInspect {
  Descriptor?: { digest?: string; size?: number; mediaType?: string };
  Platforms?: { architecture?: string; os?: string; variant?: string }[];
}

/** The engine's `uname -m` names as image platforms name them. */
const ARCHITECTURES: Record<string, string> = { x86_64: 'amd64', amd64: 'amd64', aarch64: 'arm64', arm64: 'arm64', armv7l: 'arm', armhf: 'arm', i386: '386', i686: '386' };

/**
 * Resolves an image before a quote is signed, so a tenant never pays to open a lease whose image
 * cannot be pulled: the policy, then the local image (built on this host: used as is, as the pull
 * would), else the registry through the engine's distribution endpoint (`GET
 * /distribution/{name}/json`: the manifest digest and platforms, with the engine's own registry
 * settings and the tenant's credentials), each bounded by `timeoutMs`.
 */
export class ImageResolver {
  private platform: Promise<{ os: string; architecture: string }> | undefined;

  constructor(
    private readonly docker: Docker,
    private readonly images: Pick<ImageService, 'inspect'>,
    private readonly settings: Pick<ImageSettings, 'admission' | 'runtime' | 'docker'>,
  ) {}

  async resolve(reference: string, options: ResolveOptions): Promise<ResolvedImage> {
    const ref = checkImagePolicy(reference, this.settings.admission.images);
    const local = await this.images.inspect(reference, options.signal);
    if (local && (local.RepoDigests ?? []).length === 0 && options.registryAuth === undefined) {
      this.checkSize(reference, local.Size);
      return { reference, pinned: reference, digest: local.Id, source: 'local', sizeBytes: local.Size };
    }
    const { repository, tagOrDigest } = pullRef(ref);
    const name = tagOrDigest.startsWith('sha256:') ? `${repository}@${tagOrDigest}` : `${repository}:${tagOrDigest}`;
    const found = await this.distribution(name, ref.registry, reference, options);
    const manifestDigest = found.Descriptor?.digest;
    if (!manifestDigest || !/^sha256:[0-9a-f]{64}$/.test(manifestDigest)) {
      throw new ProviderError('IMAGE_UNRESOLVABLE', `the registry of ${reference} answered without a manifest digest`, {
        input: reference,
        fix: 'name an image in a registry that serves Docker or OCI manifests',
      });
    }
    await this.checkPlatform(reference, found.Platforms ?? []);
    const digest = `${repository}@${manifestDigest}`;
    // The tag stays beside the digest so that policy patterns written with tags still match it.
    const pinned = ref.tag !== undefined ? `${repository}:${ref.tag}@${manifestDigest}` : digest;
    const pulled = await this.images.inspect(digest, options.signal);
    if (pulled) this.checkSize(reference, pulled.Size);
    return { reference, pinned, digest, source: 'registry', sizeBytes: pulled?.Size ?? null };
  }

  private async distribution(name: string, registry: string, reference: string, options: ResolveOptions): Promise<DistributionInspect> {
    const auth = options.registryAuth
      ? { username: options.registryAuth.username, password: options.registryAuth.password, serveraddress: options.registryAuth.serverAddress ?? registry }
      : undefined;
    const what = `asking the registry of ${reference} for its manifest`;
    try {
      return await boundedCall(what, { signal: options.signal, timeoutMs: options.timeoutMs }, (abortSignal) =>
        new Promise<DistributionInspect>((resolve, reject) => {
          // dockerode's Image.distribution does not pass a signal on; the modem takes one.
          this.docker.modem.dial(
            {
              path: `/distribution/${name}/json`,
              method: 'GET',
              statusCodes: { 200: true, 401: 'unauthorized', 403: 'forbidden', 404: 'not found', 500: 'server error' },
              abortSignal,
              ...(auth ? { authconfig: auth } : {}),
            } as never,
            (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as DistributionInspect)),
          );
        }),
      );
    } catch (err) {
      if (err instanceof ProviderError && err.code === 'BACKEND_TIMEOUT') {
        throw new ProviderError('REGISTRY_TIMEOUT', `the registry of ${reference} gave no answer within ${options.timeoutMs} ms`, {
          input: reference,
          cause: err,
          fix: 'ask again later, or use an image in a registry that answers (the provider checks the image before it quotes)',
        });
      }
      if (err instanceof ProviderError) throw err;
      const classified = pullError(err, reference);
      if (classified.code !== 'IMAGE_PULL_FAILED') throw classified;
      throw new ProviderError('IMAGE_UNRESOLVABLE', `the registry of ${reference} could not be asked for the image: ${engineMessage(err)}`, {
        input: reference,
        fix: 'check the image name and its registry (a registry this provider can reach, spelled as registry/repository:tag)',
      });
    }
  }

  private async checkPlatform(reference: string, platforms: NonNullable<DistributionInspect['Platforms']>): Promise<void> {
    const known = platforms.filter((p) => p.os && p.architecture);
    if (known.length === 0) return;
    const engine = await this.enginePlatform();
    if (known.some((p) => p.os === engine.os && p.architecture === engine.architecture)) return;
    const offered = known.map((p) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`).join(', ');
    throw new ProviderError('IMAGE_PLATFORM_UNSUPPORTED', `image ${reference} is built for ${offered}; this provider runs ${engine.os}/${engine.architecture}`, {
      input: reference,
      fix: `use an image built for ${engine.os}/${engine.architecture}`,
    });
  }

  private enginePlatform(): Promise<{ os: string; architecture: string }> {
    this.platform ??= boundedCall('asking the engine for its platform', { timeoutMs: this.settings.docker.requestTimeoutMs }, () => this.docker.info() as Promise<{ OSType?: string; Architecture?: string }>)
      .then((info) => ({ os: info.OSType ?? 'linux', architecture: ARCHITECTURES[info.Architecture ?? ''] ?? info.Architecture ?? 'amd64' }))
      .catch((err: unknown) => {
        this.platform = undefined;
        throw err;
      });
    return this.platform;
  }

  private checkSize(reference: string, size: number): void {
    const max = this.settings.runtime.images.maxSizeBytes;
    if (size > max) throw new ProviderError('IMAGE_TOO_LARGE', `image ${reference} is ${size} bytes, over this provider's limit of ${max}`, { input: reference });
  }
}
