import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { ProviderError, describeError } from '../../errors';
import { manifestSchema, parseManifest, type Manifest } from '../../runtime';
import { parseBytes } from '../../util/bytes';

/**
 * A manifest as a tenant writes it: YAML (or JSON, which is YAML), the fields of the protocol's
 * manifest schema, with two kindnesses for people: sizes may be written `256MiB` and durations
 * `10m`; both become the numbers the schema takes before it checks them. Nothing else is added:
 * the manifest hashed into the quote is exactly the checked one.
 */

const SIZE_KEYS = ['memoryBytes', 'shmBytes', 'diskBytes'] as const;
const DURATION = /^(\d+)\s*(s|m|h|d)$/;
const DURATION_SECONDS = { s: 1, m: 60, h: 3_600, d: 86_400 } as const;

/** The JSON Schema of what a manifest file may hold (the protocol's schema, as input). */
export function manifestJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(manifestSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchemaObject;
  // What the file may say beyond the protocol's numbers: sizes and durations as text.
  const resources = schema.properties?.resources?.properties ?? {};
  for (const key of SIZE_KEYS) {
    const numeric = resources[key];
    if (numeric) resources[key] = { anyOf: [numeric, { type: 'string', pattern: SIZE_PATTERN, description: 'a size such as 64MiB, 2GiB or 10G' }] };
  }
  const duration = schema.properties?.maxDurationSeconds;
  if (schema.properties && duration) schema.properties.maxDurationSeconds = { anyOf: [duration, { type: 'string', pattern: DURATION.source, description: 'a duration such as 90s, 10m, 2h or 1d' }] };
  return {
    $id: 'https://provider.invalid/schemas/tenant-manifest.json',
    title: 'Lease manifest',
    description: 'What a tenant asks a provider to run: `provider tenant deploy <file>`.',
    ...schema,
  };
}

interface JsonSchemaObject {
  properties?: Record<string, JsonSchemaObject | undefined> & { resources?: JsonSchemaObject; maxDurationSeconds?: JsonSchemaObject };
  [key: string]: unknown;
}

const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*([KkMmGgTt][Ii]?[Bb]?|[Bb])?\\s*$';

/** Reads, converts and checks a manifest file; `image` replaces the file's image (a local test image). */
export function loadManifestFile(file: string, overrides: { image?: string } = {}): Manifest {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ProviderError('USAGE', `cannot read the manifest ${file}: ${describeError(err)}`, { input: file, fix: 'name a readable YAML manifest, e.g. examples/hello.yaml' });
  }
  return parseManifestText(text, file, overrides);
}

export function parseManifestText(text: string, file: string, overrides: { image?: string } = {}): Manifest {
  let raw: unknown;
  try {
    raw = YAML.parse(text, { maxAliasCount: 16 });
  } catch (err) {
    throw new ProviderError('MANIFEST_INVALID', `${file} is not valid YAML: ${describeError(err).split('\n')[0]}`, { input: file, fix: 'fix the YAML syntax at the line named' });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ProviderError('MANIFEST_INVALID', `${file} must hold a mapping (image, resources, maxDurationSeconds...)`, { input: file, fix: 'see `provider tenant manifest schema` and examples/hello.yaml' });
  }
  const manifest = humanised(raw as Record<string, unknown>);
  if (overrides.image !== undefined) manifest.image = overrides.image;
  try {
    return parseManifest(manifest);
  } catch (err) {
    if (err instanceof ProviderError) {
      throw new ProviderError('MANIFEST_INVALID', `${file}: ${err.message}`, { input: err.input, fix: 'see `provider tenant manifest schema` for every field' });
    }
    throw err;
  }
}

function humanised(raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  if (typeof out.maxDurationSeconds === 'string') {
    const m = DURATION.exec(out.maxDurationSeconds.trim());
    if (m) out.maxDurationSeconds = Number(m[1]) * DURATION_SECONDS[m[2] as keyof typeof DURATION_SECONDS];
  }
  const resources = out.resources;
  if (resources !== null && typeof resources === 'object' && !Array.isArray(resources)) {
    const r: Record<string, unknown> = { ...(resources as Record<string, unknown>) };
    for (const key of SIZE_KEYS) {
      const value = r[key];
      if (typeof value === 'string') r[key] = parseBytes(value) ?? value;
    }
    out.resources = r;
  }
  return out;
}
