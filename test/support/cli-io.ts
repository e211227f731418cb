import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { CliIo } from '../../src/cli/context';
import { main } from '../../src/cli/main';
import { execFileAsync } from '../../src/util/exec';
import { systemClock } from '../../src/util/clock';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** A scratch directory under the OS temp dir; tests do not clean it so failures can be inspected. */
export function tempDir(prefix = 'provider-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A config file for a real-looking network (chain 8453) whose RPC and API answer nothing, in a
 * fresh directory: commands that act as a tenant there need a key file and find no daemon.
 */
export async function offDevnetConfig(): Promise<{ file: string; dir: string }> {
  const dir = tempDir();
  const file = join(dir, 'provider.yaml');
  writeFileSync(
    file,
    [
      `dataDir: ${dir}`,
      'network:',
      '  rpcUrl: http://127.0.0.1:1',
      '  chainId: 8453',
      '  marketplaceAddress: "0x00000000000000000000000000000000000000aa"',
      'api:',
      '  host: 127.0.0.1',
      `  port: ${await deadPort()}`,
      '',
    ].join('\n'),
  );
  return { file, dir };
}

/** A port nothing listens on, so every command finds the daemon down. */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function collector(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

/**
 * Runs the CLI in-process with its own streams, environment and home, so nothing of the machine
 * running the tests (its config files, its PROVIDER_* variables) leaks in.
 */
export async function runCli(args: readonly string[], io: Partial<CliIo> = {}): Promise<CliRun> {
  const stdout = collector();
  const stderr = collector();
  const home = io.home ?? tempDir('provider-home-');
  const code = await main(['node', 'provider', ...args], {
    stdout: stdout.stream,
    stderr: stderr.stream,
    env: { HOME: home, PATH: process.env.PATH },
    cwd: home,
    uid: 1000,
    home,
    exec: execFileAsync,
    clock: systemClock,
    ...io,
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}
