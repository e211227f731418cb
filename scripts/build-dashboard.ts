/**
 * Copies the dashboard's page and files, and uPlot's, to dist/dashboard/static: the daemon serves
 * them from there (src/dashboard), so the page works without any internet access.
 */
import { copyFileSync, cpSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = join(__dirname, '..');
const out = join(root, 'dist', 'dashboard', 'static');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
cpSync(join(root, 'src', 'dashboard', 'static'), out, { recursive: true });
const uplot = dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
for (const file of ['uPlot.iife.min.js', 'uPlot.min.css']) copyFileSync(join(uplot, file), join(out, file));
