import { statfs } from 'node:fs/promises';
import type Docker from 'dockerode';
import type { ProviderConfig } from '../config';
import { ProviderError, describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { engineMessage, isAbortError, isEngineNotFound } from './docker-errors';
import { canonicalRef, pullRef, type ImageRef } from './image-ref';
import { checkImagePolicy } from './image-policy';
import { boundedCall, slowCallTimeout, type CallBounds } from './bounded-call';
import type { RegistryAuth } from './manifest';

export interface PullProgress {
  image: string;
  /** Layer id as the engine names it (short digest). */
  layer: string;
  status: string;
  /** Bytes of this layer done so far in the current phase (download, then extract). */
  current: number | undefined;
  total: number | undefined;
}

export interface PreparedImage {
  /** The image as the tenant wrote it. */
  reference: string;
  /** Image id (sha256:...) the container is created from: a later retag cannot swap it. */
  id: string;
  /** `repo@sha256:...` from the registry when pulled from one; the image id for local images. */
  digest: string;
  sizeBytes: number;
  pulled: boolean;
}

export interface PrepareOptions {
  registryAuth?: RegistryAuth;
  signal?: AbortSignal;
  /** Overrides runtime.images.pullTimeoutSeconds. */
  timeoutMs?: number;
  onProgress?: (progress: PullProgress) => void;
}

export type ImageSettings = Pick<ProviderConfig, 'runtime' | 'admission' | 'docker'>;

interface EngineProgressEvent {
  id?: string;
  status?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * Images for leases: admission by allow/deny globs before anything is fetched, pulls with
 * progress, auth, size limit and timeout, and least-recently-used cleanup when the disk fills.
 *
 * Registry credentials live only in the argument of one pull: they are not stored on this object,
 * not logged (the logger's redact list covers registryAuth/password/auth too) and not put in errors.
 *
 * A tenant must not use a private image another tenant pulled just because it is cached: an image
 * that came from a registry (it has RepoDigests) is always pulled again, so the registry checks
 * this tenant's credentials. Images built or imported on this host (no RepoDigests) are used as is.
 */
export class ImageService {
  private readonly lastUsed = new Map<string, number>();
  private root: string | undefined;

  constructor(
    private readonly docker: Docker,
    private readonly settings: ImageSettings,
    private readonly log: Logger,
    private readonly clock: Clock,
    /** How full the disk holding `path` is, in percent; injected so cleanup is testable. */
    private readonly diskUsage: (path: string) => Promise<number> = diskUsedPercent,
  ) {}

  /** Admission, then a pull when needed, then the size check; returns what the lease will run. */
  async prepare(reference: string, options: PrepareOptions = {}): Promise<PreparedImage> {
    const ref = checkImagePolicy(reference, this.settings.admission.images);
    const local = await this.inspect(reference, options.signal);
    let pulled = false;
    if (!local || (local.RepoDigests ?? []).length > 0 || options.registryAuth !== undefined) {
      // A failed pull of a registry image fails the lease even when a copy is cached: using the
      // copy would skip the registry's check of this tenant's credentials.
      await this.pull(ref, reference, options);
      pulled = true;
    }
    const image = pulled ? await this.inspect(reference, options.signal) : local;
    if (!image) {
      throw new ProviderError('IMAGE_NOT_FOUND', `image ${reference} is not there after the pull`, { input: reference });
    }
    const max = this.settings.runtime.images.maxSizeBytes;
    if (image.Size > max) {
      if (pulled) await this.removeQuietly(image.Id, options.signal);
      throw new ProviderError('IMAGE_TOO_LARGE', `image ${reference} is ${image.Size} bytes, over this provider's limit of ${max}`, { input: reference });
    }
    const { repository } = pullRef(ref);
    const digest =
      ref.digest !== undefined
        ? `${repository}@${ref.digest}`
        : ((image.RepoDigests ?? []).find((d) => d.startsWith(`${repository}@`) || d.startsWith(`${canonicalRef({ ...ref, tag: undefined, digest: undefined })}@`)) ??
          (image.RepoDigests ?? [])[0] ??
          image.Id);
    this.touch(image.Id);
    return { reference, id: image.Id, digest, sizeBytes: image.Size, pulled };
  }

  /** Marks an image used now (least-recent-use order for cleanup). */
  touch(imageId: string): void {
    this.lastUsed.set(imageId, this.clock.now());
  }

  private bounds(signal: AbortSignal | undefined): CallBounds {
    return { signal, timeoutMs: this.settings.docker.requestTimeoutMs };
  }

  /** The local image `reference` names, or undefined when the engine has none. */
  async inspect(reference: string, signal: AbortSignal | undefined): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      // dockerode does not hand this call's signal to the request: on a timeout the request is left
      // to the engine, but the caller is free.
      return await boundedCall(`inspecting image ${reference}`, this.bounds(signal), () => this.docker.getImage(reference).inspect());
    } catch (err) {
      if (isEngineNotFound(err)) return undefined;
      if (err instanceof ProviderError) throw err;
      throw new ProviderError('DOCKER_REQUEST_FAILED', `could not inspect image ${reference}: ${engineMessage(err)}`, { input: reference, cause: err });
    }
  }

  private async pull(ref: ImageRef, reference: string, options: PrepareOptions): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.settings.runtime.images.pullTimeoutSeconds * 1000;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const { repository, tagOrDigest } = pullRef(ref);
    const auth = options.registryAuth
      ? { username: options.registryAuth.username, password: options.registryAuth.password, serveraddress: options.registryAuth.serverAddress ?? ref.registry }
      : undefined;
    const max = this.settings.runtime.images.maxSizeBytes;
    const layerTotals = new Map<string, number>();
    this.log.info({ image: reference }, 'pulling image');
    const started = this.clock.now();
    const local = new AbortController();
    const both = AbortSignal.any([signal, local.signal]);
    let tooLarge = false;
    try {
      // dockerode's types miss the (auth, options) promise form; auth travels in X-Registry-Auth.
      const createImage = this.docker.createImage.bind(this.docker) as unknown as (auth: unknown, options: object) => Promise<NodeJS.ReadableStream>;
      const stream = await createImage(auth, { fromImage: repository, tag: tagOrDigest, abortSignal: both });
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(
          stream,
          (err: Error | null) => (err ? reject(err) : resolve()),
          (event: EngineProgressEvent) => {
            if (event.error) return; // followProgress rejects with it
            const layer = event.id ?? '';
            const current = event.progressDetail?.current;
            const total = event.progressDetail?.total;
            if (event.status === 'Downloading' && total !== undefined && total > 0) {
              layerTotals.set(layer, total);
              const sum = [...layerTotals.values()].reduce((a, b) => a + b, 0);
              // Compressed sizes only ever understate the unpacked image, so this stops a pull that is
              // certainly too large early; the unpacked size is checked again after the pull.
              if (sum > max && !tooLarge) {
                tooLarge = true;
                local.abort();
              }
            }
            options.onProgress?.({ image: reference, layer, status: event.status ?? '', current, total });
          },
        );
        both.addEventListener('abort', () => reject(both.reason ?? new Error('aborted')), { once: true });
      });
    } catch (err) {
      if (tooLarge) {
        throw new ProviderError('IMAGE_TOO_LARGE', `image ${reference} has layers larger than this provider's limit of ${max} bytes`, { input: reference });
      }
      if (timeout.aborted) {
        throw new ProviderError('IMAGE_PULL_TIMEOUT', `pulling ${reference} took longer than ${Math.round(timeoutMs / 1000)} s`, {
          input: reference,
          fix: 'raise runtime.images.pullTimeoutSeconds if large images are expected',
        });
      }
      if (options.signal?.aborted || isAbortError(err)) {
        throw new ProviderError('OPERATION_ABORTED', `pull of ${reference} was aborted`, { input: reference });
      }
      throw pullError(err, reference);
    }
    this.log.info({ image: reference, ms: this.clock.now() - started }, 'image pulled');
  }

  /** The engine's data root (DockerRootDir), asked once: it changes only with a restart of dockerd. */
  async dataRoot(signal?: AbortSignal): Promise<string> {
    if (this.root === undefined) {
      // @types/dockerode misses the options of info, which dockerode takes.
      const engine = this.docker as unknown as { info(options: object): Promise<{ DockerRootDir?: string }> };
      const info = await boundedCall('asking the engine for its data root', this.bounds(signal), (abortSignal) => engine.info({ abortSignal }));
      this.root = info.DockerRootDir ?? '/var/lib/docker';
    }
    return this.root;
  }

  /**
   * Removes images no container uses, least recently used first, while the disk holding Docker's
   * data is above runtime.images.cleanupAtDiskPercent. Returns the ids removed.
   */
  async cleanup(options: { keep?: readonly string[]; signal?: AbortSignal } = {}): Promise<string[]> {
    const bounds = this.bounds(options.signal);
    const root = await this.dataRoot(options.signal);
    const threshold = this.settings.runtime.images.cleanupAtDiskPercent;
    const removed: string[] = [];
    if ((await this.diskUsage(root)) <= threshold) return removed;
    const containers = await boundedCall('listing containers', bounds, (abortSignal) => this.docker.listContainers({ all: true, abortSignal }));
    const inUse = new Set(containers.map((c) => c.ImageID));
    const keep = new Set(options.keep ?? []);
    const images = await boundedCall('listing images', bounds, (abortSignal) => this.docker.listImages({ all: false, abortSignal }));
    const candidates = images
      .filter((img) => !inUse.has(img.Id) && !keep.has(img.Id) && !(img.RepoTags ?? []).some((t) => keep.has(t)))
      .map((img) => ({ id: img.Id, used: this.lastUsed.get(img.Id) ?? img.Created * 1000 }))
      .sort((a, b) => a.used - b.used);
    for (const candidate of candidates) {
      if (options.signal?.aborted) break;
      if ((await this.diskUsage(root)) <= threshold) break;
      if (await this.removeQuietly(candidate.id, options.signal)) {
        removed.push(candidate.id);
        this.lastUsed.delete(candidate.id);
      }
    }
    if (removed.length > 0) this.log.info({ removed: removed.length, root }, 'removed unused images to free disk space');
    return removed;
  }

  private async removeQuietly(id: string, signal: AbortSignal | undefined): Promise<boolean> {
    try {
      const bounds = { signal, timeoutMs: slowCallTimeout(this.settings.docker.requestTimeoutMs) };
      await boundedCall(`removing image ${id}`, bounds, (abortSignal) => this.docker.getImage(id).remove({ force: false, abortSignal }));
      return true;
    } catch (err) {
      this.log.debug({ image: id, err: engineMessage(err) }, 'image not removed');
      return false;
    }
  }
}

/** The size of the volume holding `path`, and what is free on it to unprivileged users (what leases and the store get). */
export async function diskSpace(path: string): Promise<{ freeBytes: number; sizeBytes: number }> {
  const s = await statfs(path);
  return { freeBytes: s.bavail * s.bsize, sizeBytes: s.blocks * s.bsize };
}

export async function diskUsedPercent(path: string): Promise<number> {
  const { freeBytes, sizeBytes } = await diskSpace(path);
  return sizeBytes === 0 ? 0 : ((sizeBytes - freeBytes) / sizeBytes) * 100;
}

/** The one classifier of the engine's registry errors (a pull's, or a distribution inspect's). */
export function pullError(err: unknown, reference: string): ProviderError {
  const message = engineMessage(err);
  if (/unauthorized|authentication required|no basic auth credentials|incorrect username or password|denied|401/i.test(message)) {
    return new ProviderError('REGISTRY_AUTH_FAILED', `the registry refused the credentials for ${reference}`, {
      input: reference,
      cause: new Error(message),
    });
  }
  if (/manifest unknown|not found|does not exist/i.test(message)) {
    return new ProviderError('IMAGE_NOT_FOUND', `image ${reference} does not exist in its registry (${message})`, { input: reference });
  }
  return new ProviderError('IMAGE_PULL_FAILED', `could not pull ${reference}: ${message || describeError(err)}`, { input: reference });
}
