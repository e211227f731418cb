import { ProviderError } from '../errors';
import { imageMatches, isImageIdReference, parseImageRef, type ImageRef } from './image-ref';

/** admission.images of the config: globs on image names; an empty allow list allows all. */
export interface ImagePolicy {
  allow: readonly string[];
  deny: readonly string[];
}

/**
 * Whether this provider runs `reference`: the one check, applied when a quote is signed (so a
 * tenant never pays to open a lease that the pull would refuse) and again before a pull. Throws
 * IMAGE_DENIED; returns the parsed reference.
 */
export function checkImagePolicy(reference: string, policy: ImagePolicy): ImageRef {
  if (isImageIdReference(reference)) {
    // An id would run whatever local image has it, past the allow/deny patterns on names.
    throw new ProviderError('IMAGE_DENIED', `image ${reference} is an image id; leases name images by repository`, {
      input: reference,
      fix: 'name the image as repository[:tag] or repository@sha256:digest',
    });
  }
  const ref = parseImageRef(reference);
  const denied = policy.deny.find((pattern) => imageMatches(pattern, ref));
  if (denied !== undefined) {
    throw new ProviderError('IMAGE_DENIED', `image ${reference} is refused by this provider (matches deny pattern "${denied}")`, { input: reference });
  }
  if (policy.allow.length > 0 && !policy.allow.some((pattern) => imageMatches(pattern, ref))) {
    throw new ProviderError('IMAGE_DENIED', `image ${reference} is not in this provider's allowed images`, { input: reference });
  }
  return ref;
}
