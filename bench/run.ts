/**
 * `npm run bench -- <name> [args...]` runs bench/<name>.ts. Each bench prints readable figures,
 * ends with one JSON line of them, and exits 0; speed is measured here, never asserted in tests.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  const available = readdirSync(__dirname)
    .filter((file) => file.endsWith('.ts') && file !== 'run.ts')
    .map((file) => file.replace(/\.ts$/, ''))
    .sort();
  if (!name || !available.includes(name)) {
    process.stderr.write(`usage: npm run bench -- <name>\navailable: ${available.join(', ') || '(none)'}\n`);
    process.exitCode = name ? 2 : 0;
    return;
  }
  process.argv = [process.argv[0] ?? 'node', join(__dirname, `${name}.ts`), ...rest];
  const bench = (await import(join(__dirname, `${name}.ts`))) as { run?: (args: string[]) => Promise<void> };
  if (typeof bench.run !== 'function') throw new Error(`bench/${name}.ts must export run(args)`);
  await bench.run(rest);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
