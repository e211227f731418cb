import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonRpcProvider, Wallet, toBeHex, type Provider } from 'ethers';
import { createRpcProvider, decodeMarketplaceLog, marketplaceAt, providerAccount, type ProviderAccount } from '../../src/chain';
import YAML from 'yaml';
import { devPrivateKey, freePort } from '../../src/devnet';
import { PinnedTransport, TenantClient, type PinnedRequest } from '../../src/tenant';
import { removeInstanceContainers } from '../integration/leases/support';
export { until } from '../support/until';
import { until } from '../support/until';

/** What LeaseSettled paid the provider and refunded the tenant: V2 clears a settled lease's slot, so the event is the chain's record. */
export async function leaseSettlement(rpc: Provider, marketplace: string, leaseId: bigint): Promise<{ paid: bigint; refund: bigint } | undefined> {
  const market = marketplaceAt(marketplace, rpc);
  const topic = market.interface.getEvent('LeaseSettled')!.topicHash;
  const logs = await rpc.getLogs({ address: marketplace, topics: [topic, toBeHex(leaseId, 32)], fromBlock: 0 });
  for (const log of logs) {
    const event = decodeMarketplaceLog(market, log);
    if (event?.name === 'LeaseSettled') return { paid: event.args.paid, refund: event.args.refund };
  }
  return undefined;
}

/** The provider's credited earnings (withdraw() pays them to its payout address), bond and status. */
export function accountOf(rpc: Provider, marketplace: string, provider: string): Promise<ProviderAccount> {
  return providerAccount(marketplaceAt(marketplace, rpc), provider);
}

const ROOT = join(__dirname, '..', '..');

export interface DaemonReady {
  apiUrl: string;
  provider: string;
  chainId: number;
  marketplace: string;
  token: string;
  rpcUrl: string;
  devnet: boolean;
  /** SHA-256 of the API certificate the daemon serves (and registered); null without TLS. */
  tlsSha256: string | null;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A tenant of a running daemon: its client (pinned to the daemon's certificate), key and RPC. */
export interface DevTenant {
  client: TenantClient;
  wallet: Wallet;
  rpc: JsonRpcProvider;
}

/**
 * One devnet daemon process for the tests of a file: created and started before them, handed to
 * `use` with the dev tenant, then stopped after them (a graceful stop on SIGTERM exits 0) and its
 * files and containers removed.
 */
export function daemonForTests(name: string, use: (daemon: DaemonProcess, tenant: DevTenant) => void, config: Record<string, unknown> = {}): void {
  let daemon: DaemonProcess | undefined;
  let tenant: DevTenant | undefined;
  beforeAll(async () => {
    daemon = await DaemonProcess.create(name, config);
    await daemon.start();
    tenant = daemon.tenant();
    use(daemon, tenant);
  });
  afterAll(async () => {
    if (!daemon) return;
    const code = await daemon.stop();
    tenant?.rpc.destroy();
    await daemon.cleanup();
    expect(code).toBe(0);
  });
}

/**
 * `node bin/provider start` as a child process with its own data dir and config file: the daemon
 * exactly as an operator runs it. Its stderr (JSON logs) goes to <dataDir>/daemon.log.
 */
export class DaemonProcess {
  private child: ChildProcess | undefined;
  ready: DaemonReady | undefined;
  exit: Promise<number | null> = Promise.resolve(null);

  private constructor(
    readonly dataDir: string,
    readonly configPath: string,
    private readonly env: NodeJS.ProcessEnv,
    /** A command the daemon and its CLI run under, e.g. nsenter into a network namespace. */
    private readonly launcher: readonly string[] = [],
  ) {}

  private spawnArgs(args: readonly string[]): [string, string[]] {
    const [command, ...rest] = [...this.launcher, process.execPath, join(ROOT, 'bin', 'provider'), ...args];
    return [command!, rest];
  }

  /** Writes the config (devnet on a free port, short challenge window, fast metering) and starts. */
  static async create(name: string, config: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}, launcher: readonly string[] = []): Promise<DaemonProcess> {
    const dataDir = mkdtempSync(join(tmpdir(), `provider-e2e-${name}-`));
    const base = {
      dataDir,
      log: { level: 'info', format: 'json' },
      devnet: { port: await freePort(), blockTimeSeconds: 1, challengeWindowSeconds: 20 },
      api: { host: '127.0.0.1', port: await freePort(), operatorPort: await freePort() },
      reserve: { cpuMillis: 0, memoryBytes: 0, diskBytes: 0 },
      metering: { sampleIntervalSeconds: 1 },
      settlement: { checkpointIntervalSeconds: 5, countersignGraceSeconds: 6, withdrawIntervalSeconds: 60 },
    };
    const merged = { ...base, ...config };
    const configPath = join(dataDir, 'provider.yaml');
    writeFileSync(configPath, YAML.stringify(merged));
    return new DaemonProcess(dataDir, configPath, env, launcher);
  }

  /** `startArgs`: more `provider start` flags (--drain-timeout...). */
  async start(timeoutMs = 90_000, startArgs: readonly string[] = []): Promise<DaemonReady> {
    const log = createWriteStream(join(this.dataDir, 'daemon.log'), { flags: 'a' });
    const child = spawn(...this.spawnArgs(['start', '--json', '-c', this.configPath, ...startArgs]), {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stderr!.pipe(log);
    this.exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const ready = await new Promise<DaemonReady>((resolve, reject) => {
      let buffer = '';
      const timer = setTimeout(() => reject(new Error(`daemon not ready within ${timeoutMs} ms; see ${this.dataDir}/daemon.log`)), timeoutMs);
      child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        const line = buffer.split('\n').find((l) => l.startsWith('{'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line) as DaemonReady);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`daemon exited with ${code} before it was ready; see ${this.dataDir}/daemon.log`));
      });
    });
    this.ready = ready;
    return ready;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** SIGTERM and the exit code (graceful shutdown must give 0). */
  async stop(timeoutMs = 30_000): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null) return this.child?.exitCode ?? null;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), timeoutMs);
    const code = await this.exit;
    clearTimeout(timer);
    return code;
  }

  /** Sends `signal` (SIGHUP to reload, SIGTERM to stop or drain) without waiting for anything. */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** This data dir's container name prefix part (`provider-lease-<instance>-<leaseId>`), once the daemon has run. */
  instance(): string | undefined {
    return instanceIdOf(this.dataDir);
  }

  /** The daemon's JSON log lines so far. */
  logLines(): Record<string, unknown>[] {
    const text = readFileSync(join(this.dataDir, 'daemon.log'), 'utf8');
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** kill -9: no shutdown at all. */
  async kill9(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exit;
  }

  /** The instance id prefix of this data dir's containers, read from its store. */
  async cleanup(options: { keepDir?: boolean } = {}): Promise<void> {
    await this.stop().catch(() => undefined);
    // A devnet anvil left by a kill -9 is stopped by the next start; here, by its pid file.
    try {
      const pid = Number(require('node:fs').readFileSync(join(this.dataDir, 'devnet', 'anvil.pid'), 'utf8'));
      if (pid > 1) process.kill(pid, 'SIGKILL');
    } catch {
      // none
    }
    const instance = instanceIdOf(this.dataDir);
    await removeInstanceContainers(instance);
    if (!options.keepDir && !process.env.KEEP_E2E_DIRS) rmSync(this.dataDir, { recursive: true, force: true });
  }

  /**
   * Another command against this daemon's config, `node bin/provider -c <config> ...args`, as an
   * operator runs it next to the daemon; killed past `timeoutMs`.
   */
  cli(args: readonly string[], timeoutMs = 120_000): Promise<CliResult> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const child = spawn(...this.spawnArgs(['-c', this.configPath, ...args]), {
        cwd: ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...this.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout!.on('data', (c: Buffer) => out.push(c));
      child.stderr!.on('data', (c: Buffer) => err.push(c));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', reject);
      // 'close', not 'exit': the output is whole only once the pipes are drained.
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: Date.now() - started });
      });
    });
  }

  /** The operator listener (plain HTTP on loopback: status, the dashboard), as the config names it. */
  operatorUrl(): string {
    const config = YAML.parse(readFileSync(this.configPath, 'utf8')) as { api: { operatorPort: number } };
    return `http://127.0.0.1:${config.api.operatorPort}`;
  }

  /**
   * A command that runs until stopped (`tenant port-forward`): its first stdout line is awaited,
   * and `stop` sends SIGINT as Ctrl-C would (SIGKILL if it has not exited 10 s later).
   */
  spawnCli(args: readonly string[]): { firstLine(timeoutMs: number): Promise<string>; stop(): Promise<number | null> } {
    const child = spawn(...this.spawnArgs(['-c', this.configPath, ...args]), {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    return {
      firstLine: (timeoutMs) =>
        until(`the first line of ${args.join(' ')} (stderr: ${err.slice(-400)})`, async () => (out.includes('\n') ? out.slice(0, out.indexOf('\n')) : undefined), timeoutMs, 100),
      stop: async () => {
        child.kill('SIGINT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        const code = await exited;
        clearTimeout(timer);
        return code;
      },
    };
  }

  tenant(key = devPrivateKey(2)): DevTenant {
    const ready = this.ready!;
    const rpc = createRpcProvider(ready.rpcUrl, { chainId: ready.chainId, pollingIntervalMs: 250 });
    const wallet = new Wallet(key, rpc);
    // The provider named: its certificate pin is read from its on-chain registration, as any tenant's.
    const client = new TenantClient({ signer: wallet, apiUrl: ready.apiUrl, chainId: ready.chainId, chain: rpc, marketplace: ready.marketplace, provider: ready.provider });
    return { client, wallet, rpc };
  }

  /** A request to the daemon's public API, pinned to the certificate it reported at start. */
  async fetch(path: string, init: PinnedRequest = { method: 'GET' }): Promise<Response> {
    const ready = this.ready!;
    const transport = new PinnedTransport(ready.apiUrl, ready.tlsSha256 ?? undefined);
    try {
      return await transport.fetch(`${ready.apiUrl}${path}`, init);
    } finally {
      transport.close();
    }
  }
}

function instanceIdOf(dataDir: string): string | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const Database = require('better-sqlite3') as typeof import('better-sqlite3');
    const files = require('node:fs').readdirSync(dataDir) as string[];
    const store = files.find((f) => f.startsWith('store-') && f.endsWith('.sqlite'));
    if (!store) return undefined;
    const db = new Database(join(dataDir, store), { readonly: true });
    try {
      return (db.prepare("SELECT value FROM store_meta WHERE key = 'instance-id'").get() as { value: string } | undefined)?.value;
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}
