import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProviderError } from '../errors';

/** The dashboard's files (npm run build copies them and uPlot's into dist/dashboard/static). */
export const ASSET_TYPES: Readonly<Record<string, string>> = {
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'uPlot.iife.min.js': 'text/javascript; charset=utf-8',
  'uPlot.min.css': 'text/css; charset=utf-8',
};
const PAGE = 'index.html';

export interface DashboardAsset {
  body: string;
  contentType: string;
}

/**
 * The page and its files, read once at start and held in memory (about 70 kB). Asset URLs carry
 * a digest of them all, `/dashboard/assets/<version>/app.js`, so a browser may cache them for good
 * and still never runs an old script against a new daemon.
 */
export class DashboardAssets {
  private constructor(
    readonly version: string,
    private readonly page: string,
    private readonly files: ReadonlyMap<string, DashboardAsset>,
  ) {}

  /** Reads `dir`; a file missing is DASHBOARD_UNAVAILABLE naming it. */
  static load(dir: string): DashboardAssets {
    const read = (name: string): string => {
      try {
        return readFileSync(join(dir, name), 'utf8');
      } catch (err) {
        throw new ProviderError('DASHBOARD_UNAVAILABLE', `the dashboard's file ${name} is missing from ${dir}`, {
          cause: err,
          input: name,
          fix: 'build the daemon with `npm run build` (it copies the dashboard into dist/dashboard/static)',
        });
      }
    };
    const files = new Map<string, DashboardAsset>();
    const hash = createHash('sha256');
    for (const [name, contentType] of Object.entries(ASSET_TYPES)) {
      const body = read(name);
      hash.update(name).update('\0').update(body).update('\0');
      files.set(name, { body, contentType });
    }
    const template = read(PAGE);
    hash.update(template);
    const version = hash.digest('hex').slice(0, 16);
    return new DashboardAssets(version, template.replaceAll('{{version}}', version), files);
  }

  /** The page, its asset URLs pointing at this version. */
  html(): string {
    return this.page;
  }

  asset(name: string): DashboardAsset | undefined {
    return this.files.get(name);
  }

  /** Bytes of the page and every asset: what a first visit downloads. */
  get weight(): number {
    let bytes = Buffer.byteLength(this.page);
    for (const file of this.files.values()) bytes += Buffer.byteLength(file.body);
    return bytes;
  }
}
