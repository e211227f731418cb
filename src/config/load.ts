import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import YAML, { LineCounter, isMap, isScalar, type Document } from 'yaml';
import { z } from 'zod';
import { ProviderError } from '../errors';
import { configSchema, SECRET_CONFIG_PATHS, type ProviderConfig } from './schema';

/** Where a value came from, so a problem can say where to fix it. */
export type ConfigOrigin =
  | { kind: 'default' }
  | { kind: 'file'; file: string; line?: number }
  | { kind: 'env'; variable: string }
  | { kind: 'flag'; flag: string };

export interface ConfigProblem {
  /** Dotted key path, e.g. `api.port`. */
  path: string;
  origin: ConfigOrigin;
  /** What is wrong and what is expected, as one clause. */
  message: string;
}

export class ConfigInvalidError extends ProviderError {
  constructor(
    readonly problems: readonly ConfigProblem[],
    readonly file: string | undefined,
  ) {
    super('CONFIG_INVALID', `invalid configuration: ${problems.length} problem${problems.length === 1 ? '' : 's'}`, {
      fix: 'correct each key listed, or remove it to use the default',
      input: file,
    });
  }
}

export interface FlagOverride {
  /** Dotted key path. */
  path: string;
  value: unknown;
  /** The flag as typed, for error messages (`--log-level`, `--set api.port=9000`). */
  flag: string;
}

export interface ConfigSources {
  /** Config file named on the command line; an explicit file must exist. */
  file?: string;
  env: NodeJS.ProcessEnv;
  flags?: readonly FlagOverride[];
  /** `--devnet`: ignore any configured network and run the embedded devnet. */
  devnet?: boolean;
  /** Effective uid and home directory pick the default paths (root runs as a system service). */
  uid: number;
  home: string;
  cwd: string;
}

export interface LoadedConfig {
  config: ProviderConfig;
  /** The file that was read, if any. */
  file: string | undefined;
  /** Things worth telling the operator that do not stop the daemon (unknown PROVIDER_* variables). */
  warnings: string[];
}

/** Environment variables that configure the program but are not config keys. */
const NON_KEY_ENV = new Set(['PROVIDER_CONFIG', 'PROVIDER_KEYSTORE_PASSWORD']);

/** Short names kept for what operators and tools already set; each is a config key's env layer. */
const ENV_ALIASES: Record<string, string[]> = {
  PROVIDER_NVIDIA_SMI: ['gpu', 'nvidiaSmiPath'],
};

export const ENV_PREFIX = 'PROVIDER_';

export function defaultConfigFile(sources: Pick<ConfigSources, 'uid' | 'home' | 'env'>): string {
  if (sources.uid === 0) return '/etc/provider/provider.yaml';
  const base = sources.env.XDG_CONFIG_HOME || join(sources.home, '.config');
  return join(base, 'provider', 'provider.yaml');
}

export function defaultDataDir(sources: Pick<ConfigSources, 'uid' | 'home' | 'env'>): string {
  if (sources.uid === 0) return '/var/lib/provider';
  const base = sources.env.XDG_DATA_HOME || join(sources.home, '.local', 'share');
  return join(base, 'provider');
}

/**
 * Defaults < file < PROVIDER_* environment < flags. Returns the validated config or throws
 * ConfigInvalidError listing every problem at once, each with the layer that supplied it.
 */
export function loadConfig(sources: ConfigSources): LoadedConfig {
  const warnings: string[] = [];
  const explicitFile = sources.file ?? (sources.env.PROVIDER_CONFIG || undefined);
  const file = explicitFile ? resolve(sources.cwd, explicitFile) : defaultConfigFile(sources);
  const fileLayer = readConfigFile(file, explicitFile !== undefined);

  const envLayer = readEnvLayer(sources.env, warnings);
  const flags = sources.flags ?? [];

  let merged: Record<string, unknown> = { dataDir: defaultDataDir(sources) };
  if (fileLayer) merged = deepMerge(merged, fileLayer.values);
  merged = deepMerge(merged, envLayer.values);
  for (const flag of flags) merged = deepMerge(merged, nest(flag.path.split('.'), flag.value));
  if (sources.devnet) delete merged.network;

  const originOf = (path: readonly PropertyKey[]): ConfigOrigin => {
    const dotted = path.map(String).join('.');
    const flag = [...flags].reverse().find((f) => dotted === f.path || dotted.startsWith(`${f.path}.`) || f.path.startsWith(`${dotted}.`));
    if (flag) return { kind: 'flag', flag: flag.flag };
    const variable = envLayer.origins.find((o) => dotted === o.path || dotted.startsWith(`${o.path}.`) || o.path.startsWith(`${dotted}.`));
    if (variable) return { kind: 'env', variable: variable.variable };
    if (fileLayer) return { kind: 'file', file, ...lineOf(fileLayer, path) };
    return { kind: 'default' };
  };

  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const problems = parsed.error.issues.flatMap((issue) => describeIssue(issue, merged, originOf));
    throw new ConfigInvalidError(problems, fileLayer ? file : undefined);
  }

  const config = parsed.data;
  config.dataDir = isAbsolute(config.dataDir) ? config.dataDir : resolve(sources.cwd, config.dataDir);
  return { config, file: fileLayer ? file : undefined, warnings };
}

interface FileLayer {
  values: Record<string, unknown>;
  doc: Document;
  lines: LineCounter;
}

function readConfigFile(file: string, mustExist: boolean): FileLayer | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !mustExist) return undefined;
    if (code === 'ENOENT') {
      throw new ProviderError('CONFIG_NOT_FOUND', `config file ${file} does not exist`, {
        input: file,
        fix: 'check the path given with --config or PROVIDER_CONFIG, or create it with `provider init`',
      });
    }
    throw new ProviderError('CONFIG_UNREADABLE', `config file ${file} cannot be read: ${(err as Error).message}`, {
      input: file,
      fix: 'make the file readable by the user the provider runs as',
      cause: err,
    });
  }
  const lines = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map<ConfigProblem>((e) => ({
      path: '(file)',
      origin: { kind: 'file', file, line: lines.linePos(e.pos[0]).line },
      message: `not valid YAML: ${e.message.split('\n')[0]}`,
    }));
    throw new ConfigInvalidError(problems, file);
  }
  const values: unknown = doc.toJS() ?? {};
  if (!isPlainObject(values)) {
    throw new ConfigInvalidError(
      [{ path: '(file)', origin: { kind: 'file', file, line: 1 }, message: 'expected a mapping of keys (key: value) at the top level' }],
      file,
    );
  }
  return { values, doc, lines };
}

function lineOf(layer: FileLayer, path: readonly PropertyKey[]): { line?: number } {
  // The deepest node that exists: a missing key points at its parent mapping.
  for (let depth = path.length; depth >= 0; depth -= 1) {
    const node = depth === 0 ? layer.doc.contents : layer.doc.getIn(path.slice(0, depth) as unknown[], true);
    if (node && typeof node === 'object' && 'range' in node && Array.isArray(node.range)) {
      return { line: layer.lines.linePos(node.range[0] as number).line };
    }
    if (depth > 0 && isMap(layer.doc.contents)) {
      const parent = layer.doc.getIn(path.slice(0, depth - 1) as unknown[], true);
      if (isMap(parent)) {
        const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === String(path[depth - 1]));
        if (pair && isScalar(pair.key) && pair.key.range) return { line: layer.lines.linePos(pair.key.range[0]).line };
      }
    }
  }
  return {};
}

interface EnvLayer {
  values: Record<string, unknown>;
  origins: { path: string; variable: string }[];
}

const TOP_LEVEL_KEYS = new Set(Object.keys(configSchema.shape));

/**
 * PROVIDER_API__PORT=9000 sets api.port: `__` separates levels, each level is SNAKE_CASE of the
 * camelCase key. Values are read as YAML scalars/flow collections (`9000`, `true`, `[a, b]`).
 */
function readEnvLayer(env: NodeJS.ProcessEnv, warnings: string[]): EnvLayer {
  const layer: EnvLayer = { values: {}, origins: [] };
  for (const [variable, raw] of Object.entries(env).sort(([a], [b]) => a.localeCompare(b))) {
    // An empty variable (`PROVIDER_X=`) is how shells and unit files unset things: not a value.
    if (!variable.startsWith(ENV_PREFIX) || raw === undefined || raw === '' || NON_KEY_ENV.has(variable)) continue;
    const segments = ENV_ALIASES[variable] ?? variable.slice(ENV_PREFIX.length).split('__').map(snakeToCamel);
    if (!TOP_LEVEL_KEYS.has(segments[0] ?? '')) {
      warnings.push(`environment variable ${variable} is not a config key and was ignored (nested keys use __, e.g. PROVIDER_LOG__LEVEL)`);
      continue;
    }
    layer.values = deepMerge(layer.values, nest(segments, parseScalar(raw)));
    layer.origins.push({ path: segments.join('.'), variable });
  }
  return layer;
}

/** Reads a value typed on a command line or in an environment variable. */
export function parseScalar(raw: string): unknown {
  // YAML reads 0x… as a hex integer and 0123 as octal; here they are addresses and ids, kept as typed.
  if (/^\s*(0x[0-9a-f]+|0\d+)\s*$/i.test(raw)) return raw.trim();
  try {
    const value: unknown = YAML.parse(raw);
    return value === null && raw.trim() !== 'null' && raw.trim() !== '~' ? raw : value;
  } catch {
    return raw;
  }
}

function snakeToCamel(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function nest(path: readonly string[], value: unknown): Record<string, unknown> {
  return path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value) as Record<string, unknown>;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Objects merge key by key; anything else (arrays included) is replaced by the later layer. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function describeIssue(
  issue: z.core.$ZodIssue,
  input: unknown,
  originOf: (path: readonly PropertyKey[]) => ConfigOrigin,
): ConfigProblem[] {
  const dotted = (path: readonly PropertyKey[]) => (path.length ? path.map(String).join('.') : '(top level)');
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(issue.path);
    return issue.keys.map((key) => {
      const path = [...issue.path, key];
      const suggestion = closest(key, known);
      const hint = suggestion ? `did you mean "${suggestion}"?` : `known keys here: ${known.join(', ')}`;
      return { path: dotted(path), origin: originOf(path), message: `unknown key; ${hint}` };
    });
  }
  if (issue.code === 'invalid_union') {
    // A union's branches each fail; the most specific failure is the custom message, if any.
    const custom = issue.errors.flat().find((inner) => inner.code === 'custom');
    if (custom) return [{ path: dotted(issue.path), origin: originOf(issue.path), message: custom.message }];
  }
  const got = valueAt(input, issue.path);
  // A mistyped secret (an RPC URL with its key) must not be echoed to the terminal or the journal.
  const secret = SECRET_CONFIG_PATHS.some((path) => path.join('.') === issue.path.map(String).join('.'));
  const received = got === undefined ? 'nothing' : secret ? '[a value, not shown: it may hold a secret]' : JSON.stringify(got);
  let message: string;
  switch (issue.code) {
    case 'invalid_type':
      message = got === undefined ? `required: expected ${issue.expected}` : `got ${received}, expected ${issue.expected}`;
      break;
    case 'too_small':
    case 'too_big':
    case 'invalid_format':
    case 'invalid_value':
      message = `got ${received}: ${issue.message}`;
      break;
    default:
      message = issue.message.includes('got') ? issue.message : `got ${received}: ${issue.message}`;
  }
  return [{ path: dotted(issue.path), origin: originOf(issue.path), message }];
}

function knownKeysAt(path: readonly PropertyKey[]): string[] {
  let schema: z.ZodType = configSchema;
  for (const key of path) {
    const shape = objectShape(schema);
    const next = shape?.[String(key)];
    if (!next) return [];
    schema = next;
  }
  return Object.keys(objectShape(schema) ?? {});
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let current: z.ZodType = schema;
  // Unwrap defaults, optionals and refinements down to the object underneath.
  for (let i = 0; i < 8; i += 1) {
    if (current instanceof z.ZodObject) return current.shape as Record<string, z.ZodType>;
    const def = current.def as { innerType?: z.ZodType; in?: z.ZodType };
    const inner = def.innerType ?? def.in;
    if (!inner) return undefined;
    current = inner;
  }
  return undefined;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (!best || distance < best.distance) best = { candidate, distance };
  }
  return best && best.distance <= Math.min(3, Math.ceil(word.length / 3)) ? best.candidate : undefined;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i += 1) {
    let previous = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j += 1) {
      const current = row[j] ?? 0;
      row[j] = Math.min((row[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length] ?? 0;
}

/** One line per problem: where, which key, what is wrong and what is expected. */
export function formatConfigProblems(error: ConfigInvalidError): string[] {
  return error.problems.map((problem) => `${problem.path}: ${problem.message} [${formatOrigin(problem.origin)}]`);
}

export function formatOrigin(origin: ConfigOrigin): string {
  switch (origin.kind) {
    case 'default':
      return 'default';
    case 'file':
      return origin.line === undefined ? origin.file : `${origin.file}:${origin.line}`;
    case 'env':
      return `env ${origin.variable}`;
    case 'flag':
      return `flag ${origin.flag}`;
  }
}
