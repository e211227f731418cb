import { join } from 'node:path';
import type { Route, RouteResult } from '../api';
import { ProviderError } from '../errors';
import type { Logger } from '../log';
import { DashboardAssets } from './assets';

/** Where `npm run build` puts the files, beside this module's compiled code. */
export const DEFAULT_ASSETS_DIR = join(__dirname, 'static');

/**
 * Everything the page may load comes from this daemon; no inline script or style, no frames, no
 * forms posting elsewhere. uPlot styles its elements through the DOM, which CSP allows.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export interface DashboardRoutesOptions {
  /** Default DEFAULT_ASSETS_DIR. */
  assetsDir?: string;
  log: Logger;
}

/**
 * GET /dashboard and its files, as operator routes: they answer wherever the operator API does,
 * to whomever it does. The page reads the operator API itself; these routes hold no data.
 */
export function dashboardRoutes(options: DashboardRoutesOptions): Route<never>[] {
  const dir = options.assetsDir ?? DEFAULT_ASSETS_DIR;
  let assets: DashboardAssets | ProviderError;
  try {
    assets = DashboardAssets.load(dir);
    options.log.debug({ dir, version: assets.version, bytes: assets.weight }, 'dashboard files loaded');
  } catch (err) {
    if (!(err instanceof ProviderError)) throw err;
    // The daemon runs without its dashboard rather than not at all; the page says why.
    options.log.warn({ dir, fix: err.fix }, err.message);
    assets = err;
  }
  const loaded = (): DashboardAssets => {
    if (assets instanceof ProviderError) throw assets;
    return assets;
  };
  const page = (): RouteResult => ({
    text: loaded().html(),
    contentType: 'text/html; charset=utf-8',
    headers: { ...COMMON_HEADERS, 'cache-control': 'no-cache', 'content-security-policy': CONTENT_SECURITY_POLICY },
  });
  return [
    { method: 'GET', path: '/dashboard', auth: 'operator', handler: page },
    { method: 'GET', path: '/dashboard/', auth: 'operator', handler: page },
    {
      method: 'GET',
      path: '/dashboard/assets/:version/:name',
      auth: 'operator',
      handler: ({ params }) => {
        const current = loaded();
        const file = current.asset(params.name ?? '');
        if (!file) throw new ProviderError('ROUTE_NOT_FOUND', `no dashboard file ${(params.name ?? '').slice(0, 80)}`);
        // An old version's URL gets today's file, uncached: a page loaded before a restart still works.
        const cache = params.version === current.version ? 'private, max-age=31536000, immutable' : 'no-cache';
        return { text: file.body, contentType: file.contentType, headers: { ...COMMON_HEADERS, 'cache-control': cache } };
      },
    },
  ];
}
