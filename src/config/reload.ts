import { isDeepStrictEqual } from 'node:util';
import { SECRET_CONFIG_PATHS, type ProviderConfig } from './schema';

/**
 * What SIGHUP changes in a running daemon: the prices of new quotes and who and what is admitted.
 * Running leases keep the rates fixed on-chain when they opened, so nothing they hold changes.
 */
export const RELOADABLE_SECTIONS = ['pricing', 'admission'] as const;
type ReloadableSection = (typeof RELOADABLE_SECTIONS)[number];

/**
 * Keys inside a reloadable section that are read once, when the part they configure is built (the
 * rate limiter's buckets, the funding cache): a reload names them as needing a restart rather than
 * claiming they applied.
 */
export const START_ONLY_KEYS = ['admission.rateLimit', 'admission.fundingCacheSeconds'] as const;

export interface ConfigChange {
  /** Dotted key path. */
  key: string;
  from: unknown;
  to: unknown;
}

export interface ReloadOutcome {
  /** Changes now in force. */
  applied: ConfigChange[];
  /** Changes that take effect only at the next start (the daemon keeps what it started with). */
  needRestart: ConfigChange[];
}

/**
 * The config a daemon runs with, where `pricing` and `admission` follow the latest reload. Modules
 * read `view` at the moment they decide (admission, pricing, the offer, the pull policy), so a
 * reload reaches them without restarting them; every other key stays what the daemon started with.
 */
export class ReloadableConfig {
  private current: Pick<ProviderConfig, ReloadableSection>;
  readonly view: ProviderConfig;

  constructor(private readonly started: ProviderConfig) {
    this.current = { pricing: started.pricing, admission: started.admission };
    const view = { ...started } as ProviderConfig;
    for (const section of RELOADABLE_SECTIONS) {
      Object.defineProperty(view, section, { get: () => this.current[section], enumerable: true });
    }
    this.view = view;
  }

  /** Takes the reloadable sections of `next`; reports every key that differs, applied or not. */
  apply(next: ProviderConfig): ReloadOutcome {
    const changes = diffConfig(this.startedWithCurrent(), next);
    const under = (key: string, prefix: string): boolean => key === prefix || key.startsWith(`${prefix}.`);
    const reloadable = (change: ConfigChange): boolean =>
      RELOADABLE_SECTIONS.some((s) => under(change.key, s)) && !START_ONLY_KEYS.some((k) => under(change.key, k));
    this.current = { pricing: next.pricing, admission: next.admission };
    return { applied: changes.filter(reloadable), needRestart: changes.filter((c) => !reloadable(c)) };
  }

  private startedWithCurrent(): ProviderConfig {
    return { ...this.started, ...this.current };
  }
}

/** Leaf-level differences between two configs; secrets are named but their values never shown. */
export function diffConfig(before: unknown, after: unknown, path: string[] = []): ConfigChange[] {
  if (isDeepStrictEqual(before, after)) return [];
  const key = path.join('.');
  // A section added or removed is compared key by key against nothing, so a secret inside it
  // (network.rpcUrl) is still found and redacted.
  if ((isPlainObject(before) || before === undefined) && (isPlainObject(after) || after === undefined)) {
    before ??= {};
    after ??= {};
    const [b, a] = [before as Record<string, unknown>, after as Record<string, unknown>];
    const keys = [...new Set([...Object.keys(b), ...Object.keys(a)])].sort();
    return keys.flatMap((k) => diffConfig(b[k], a[k], [...path, k]));
  }
  if (SECRET_CONFIG_PATHS.some((secret) => secret.join('.') === key)) return [{ key, from: '[redacted]', to: '[redacted]' }];
  return [{ key, from: before, to: after }];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One line per change, for the log and the terminal: `pricing.perCpuSecond: 1000 → 2000`. */
export function describeChange(change: ConfigChange): string {
  return `${change.key}: ${show(change.from)} → ${show(change.to)}`;
}

function show(value: unknown): string {
  if (value === undefined) return '(unset)';
  return typeof value === 'string' ? value : JSON.stringify(value);
}
