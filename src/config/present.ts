import { z } from 'zod';
import { configSchema, SECRET_CONFIG_PATHS, type ProviderConfig } from './schema';

/**
 * The merged config as an operator may see it: secrets reduced to what identifies them (an RPC
 * URL keeps its scheme and host, loses its path, query and credentials, where API keys live).
 */
export function redactConfig(config: ProviderConfig): Record<string, unknown> {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const path of SECRET_CONFIG_PATHS) {
    const parent = path.slice(0, -1).reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], copy);
    const key = path[path.length - 1];
    if (!parent || typeof parent !== 'object' || key === undefined) continue;
    const value = (parent as Record<string, unknown>)[key];
    if (typeof value === 'string') (parent as Record<string, unknown>)[key] = key.endsWith('Url') ? redactUrl(value) : '[redacted]';
  }
  return copy;
}

export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    const hidden = url.username || url.password || url.search || (url.pathname && url.pathname !== '/');
    return hidden ? `${url.protocol}//${url.host}/[redacted]` : `${url.protocol}//${url.host}`;
  } catch {
    return '[redacted]';
  }
}

/** JSON Schema of the config file, for editors (YAML language server) and validation tools. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...schema, title: 'provider configuration', $id: 'https://provider.dev/schema/provider-config.json' };
}
