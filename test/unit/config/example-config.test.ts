import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { configSchema, loadConfig } from '../../../src/config';
import { tempDir } from '../../support/cli-io';

const EXAMPLE = join(__dirname, '..', '..', '..', 'config', 'provider.example.yaml');

/** Optional settings in the example are written `# key: value`; this turns them on. */
function uncommentSettings(text: string): string {
  return text.replace(/^([ \t]*)# ([ \t]*[a-z][a-zA-Z0-9]*:(?:[ \t].*)?)$/gm, '$1$2');
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (let i = 0; i < 8; i += 1) {
    const def = current.def as { innerType?: z.ZodType; in?: z.ZodType };
    if (current instanceof z.ZodObject) return current;
    const inner = def.innerType ?? def.in;
    if (!inner) return current;
    current = inner;
  }
  return current;
}

function keyPaths(schema: z.ZodType, prefix: string[] = []): string[] {
  const object = unwrap(schema);
  if (!(object instanceof z.ZodObject)) return [prefix.join('.')];
  return Object.entries(object.shape as Record<string, z.ZodType>).flatMap(([key, child]) => keyPaths(child, [...prefix, key]));
}

function hasPath(value: unknown, path: string): boolean {
  let node: unknown = value;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object' || !(key in node)) return false;
    node = (node as Record<string, unknown>)[key];
  }
  return true;
}

describe('config/provider.example.yaml', () => {
  const text = readFileSync(EXAMPLE, 'utf8');

  it('is a valid config as shipped (devnet, no optional settings)', () => {
    const { config } = loadConfig({ file: EXAMPLE, env: {}, uid: 1000, home: '/nonexistent', cwd: '/' });
    expect(config.network).toBeUndefined();
  });

  it('is still valid with every optional setting turned on', () => {
    const file = join(tempDir(), 'all.yaml');
    writeFileSync(file, uncommentSettings(text));
    const { config } = loadConfig({ file, env: {}, uid: 1000, home: '/nonexistent', cwd: '/' });
    expect(config.network?.chainId).toBe(8453);
  });

  it('documents every key of the schema', () => {
    // The raw file, not the loaded config: loading fills in defaults for undocumented keys.
    const written: unknown = YAML.parse(uncommentSettings(text));
    const missing = keyPaths(configSchema).filter((path) => !hasPath(written, path));
    expect(missing).toEqual([]);
  });
});
