/**
 * Image references as Docker reads them: `busybox` is `docker.io/library/busybox:latest`; the
 * first path part is a registry only when it has a dot or a port, or is `localhost`.
 */
export interface ImageRef {
  /** Registry host (and port), `docker.io` for Docker Hub. */
  registry: string;
  /** Repository path inside the registry, `library/busybox` for official images. */
  path: string;
  tag: string | undefined;
  digest: string | undefined;
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** A bare image id (or id prefix): the engine resolves it among local images, whatever their name. */
export function isImageIdReference(ref: string): boolean {
  return /^(sha256:)?[0-9a-f]{12,64}$/i.test(ref.trim());
}

export function parseImageRef(ref: string): ImageRef {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  let registry = 'docker.io';
  let path = rest;
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first.toLowerCase();
    path = rest.slice(slash + 1);
  }
  // Docker Hub answers to several names; deny patterns written for docker.io must catch them all.
  if (DOCKER_HUB_ALIASES.has(registry)) registry = 'docker.io';
  if (registry === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, path, tag, digest };
}

/** `registry/path:tag[@digest]`, fully qualified. */
export function canonicalRef(ref: ImageRef): string {
  return `${ref.registry}/${ref.path}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** How `docker images` would show it: no docker.io/, no library/. */
export function familiarRef(ref: ImageRef): string {
  const repo = familiarRepository(ref);
  return `${repo}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

export function familiarRepository(ref: ImageRef): string {
  if (ref.registry !== 'docker.io') return `${ref.registry}/${ref.path}`;
  return ref.path.startsWith('library/') ? ref.path.slice('library/'.length) : ref.path;
}

/** The name the engine is asked to pull: registry/path plus tag, or @digest when pinned. */
export function pullRef(ref: ImageRef): { repository: string; tagOrDigest: string } {
  const repository = ref.registry === 'docker.io' ? familiarRepository(ref) : `${ref.registry}/${ref.path}`;
  return { repository, tagOrDigest: ref.digest ?? ref.tag ?? 'latest' };
}

/**
 * Whether a glob matches an image. `*` matches within one path segment, `**` across segments.
 * A pattern is tried against the familiar and the fully qualified name, with and without the
 * tag, so `busybox`, `docker.io/library/*` and `ghcr.io/acme/**` all mean what they say.
 */
export function imageMatches(pattern: string, ref: ImageRef): boolean {
  const re = globToRegExp(pattern);
  const repoFamiliar = familiarRepository(ref);
  const repoFull = `${ref.registry}/${ref.path}`;
  const candidates = [familiarRef(ref), canonicalRef(ref), repoFamiliar, repoFull];
  // A quote pins `repo:tag@digest`: patterns written for `repo:tag` still mean it.
  if (ref.tag !== undefined && ref.digest !== undefined) candidates.push(familiarRef({ ...ref, digest: undefined }), canonicalRef({ ...ref, digest: undefined }));
  return candidates.some((c) => re.test(c));
}

export function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const ch = pattern[i] as string;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        out += '.*';
        i += 1;
      } else {
        out += '[^/]*';
      }
    } else if (ch === '?') {
      out += '[^/]';
    } else {
      out += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${out}$`);
}
