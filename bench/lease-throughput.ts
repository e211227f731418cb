/**
 * Lease throughput: N short leases end to end through a real daemon (in process, on an automining
 * devnet with a 3 s challenge window) and the tenant client over HTTP: quote (verified), openLease
 * on-chain, the provider sees the event, pulls (cached), starts the hardened container on its own
 * network, meters it, sees it exit, bills the final usage, signs the final checkpoint, claims it,
 * closes the lease, finalises the claim after the window and settles (the tenant's refund). The
 * clock stops when every lease is settled on-chain.
 *
 * Each lease has its own Docker network until it is settled, and Docker's default address pools
 * hold about 30 bridge networks: at most --in-flight leases are kept unsettled at once.
 *
 * Against: `docker run --rm` of the same image and command, N at once.
 *
 *   npm run bench -- lease-throughput [--leases 50] [--in-flight 20]
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { JsonRpcProvider, NonceManager, Wallet } from 'ethers';
import { ZERO_BYTES32, marketplaceAt, tokenAt, type MarketplaceContract } from '../src/chain';
import type { QuoteResponse } from '../src/api';
import { configSchema } from '../src/config';
import { Daemon } from '../src/daemon';
import { devPrivateKey, freePort } from '../src/devnet';
import { createLogger } from '../src/log';
import { TenantClient } from '../src/tenant';
import { systemClock } from '../src/util/clock';
import { execFileAsync } from '../src/util/exec';

const sh = promisify(execFile);
const IMAGE = 'provider-test/busybox:latest';
const COMMAND = ['sh', '-c', 'echo hello'];

function option(args: string[], name: string, fallback: string): number {
  const i = args.indexOf(`--${name}`);
  return Number(i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback);
}

/**
 * openLease with 30 % gas headroom: an estimate taken right before the block can come out a little
 * short for the token transfer inside (seen at ~1 in 15 opens on anvil), and a tenant pays for a
 * failed open.
 */
async function openLease(signer: NonceManager, market: MarketplaceContract, quote: QuoteResponse): Promise<bigint> {
  const data = market.encode('openLease', [quote.quote, quote.signature, 10n ** 15n]);
  const from = await signer.getAddress();
  const estimate = await signer.provider!.estimateGas({ from, to: market.address, data });
  const receipt = await (await signer.sendTransaction({ to: market.address, data, gasLimit: (estimate * 13n) / 10n })).wait();
  for (const log of receipt!.logs) {
    const event = market.parseLog(log);
    if (event?.name === 'LeaseOpened') return event.args.getValue('leaseId') as bigint;
  }
  throw new Error('openLease emitted no LeaseOpened');
}

export async function run(args: string[]): Promise<void> {
  const count = option(args, 'leases', '50');
  const inFlight = option(args, 'in-flight', '20');
  const dataDir = mkdtempSync(join(tmpdir(), 'provider-bench-throughput-'));
  const config = configSchema.parse({
    dataDir,
    log: { level: 'warn' },
    devnet: { port: await freePort(), blockTimeSeconds: 0, challengeWindowSeconds: 3 },
    api: { host: '127.0.0.1', port: await freePort() },
    reserve: { cpuMillis: 0, memoryBytes: 0, diskBytes: 0 },
    metering: { sampleIntervalSeconds: 1 },
    settlement: { checkpointIntervalSeconds: 60, countersignGraceSeconds: 0 },
  });
  const log = createLogger({ level: 'warn', format: 'json' });
  const daemon = await Daemon.start({ config, log, env: {}, exec: execFileAsync, clock: systemClock, version: 'bench' });
  const rpc = new JsonRpcProvider(daemon.info.rpcUrl, daemon.info.chainId, { staticNetwork: true, pollingInterval: 100 });
  try {
    const signer = new NonceManager(new Wallet(devPrivateKey(2), rpc));
    const client = new TenantClient({ signer, apiUrl: daemon.info.apiUrl, chainId: daemon.info.chainId, chain: rpc, marketplace: daemon.info.marketplace });
    const manifest = { image: IMAGE, command: COMMAND, resources: { cpuMillis: 20, memoryBytes: 16 * 2 ** 20 }, maxDurationSeconds: 120 };
    // The deposit approval is the tenant's one-time set-up, not per lease.
    const token = tokenAt(daemon.info.token!, rpc);
    await (await signer.sendTransaction({ to: token.address, data: token.encode('approve', [daemon.info.marketplace, 10n ** 30n]) })).wait();

    const market = marketplaceAt(daemon.info.marketplace, rpc);
    const tenant = await signer.getAddress();
    const started = Date.now();
    const leaseIds: bigint[] = [];
    const done = new Set<string>();
    const isDone = async (id: bigint): Promise<boolean> => {
      if (done.has(String(id))) return true;
      const view = await daemon.service.lease(String(id), tenant).catch(() => undefined);
      if (view?.state === 'settled' || view?.state === 'failed') done.add(String(id));
      return done.has(String(id));
    };
    while (done.size < count) {
      for (const id of leaseIds) await isDone(id);
      // Each lease has its own Docker network until it is settled: keep within the engine's address pools.
      while (leaseIds.length < count && leaseIds.length - done.size < inFlight) {
        const quote = await client.quote(manifest);
        leaseIds.push(await openLease(signer, market, quote));
      }
      if (Date.now() - started > 600_000) throw new Error(`${count - done.size} leases not settled after 10 minutes`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const failed = [];
    for (const id of leaseIds) if ((await daemon.service.lease(String(id), tenant)).state !== 'settled') failed.push(id);
    const oursMs = Date.now() - started;

    const dockerStart = Date.now();
    await Promise.all(Array.from({ length: count }, () => sh('docker', ['run', '--rm', '--cpus', '0.02', '--memory', '16m', IMAGE, ...COMMAND])));
    const dockerMs = Date.now() - dockerStart;

    const leasesPerMin = (count / oursMs) * 60_000;
    const dockerPerMin = (count / dockerMs) * 60_000;
    console.log(`${count} leases end to end, at most ${inFlight} unsettled at once (quote, openLease, pull, start, meter, exit,`);
    console.log('final usage and checkpoint, claim, close, finalise after the 3 s window, settle with the refund)');
    console.log(`  total                      ${(oursMs / 1000).toFixed(1)} s, ${failed.length} failed`);
    console.log(`  leases per minute          ${leasesPerMin.toFixed(1)}`);
    console.log(`${count} x docker run --rm, all at once`);
    console.log(`  total                      ${(dockerMs / 1000).toFixed(1)} s, ${dockerPerMin.toFixed(1)} per minute`);
    console.log(JSON.stringify({ leases_per_min: Number(leasesPerMin.toFixed(2)), ratio_to_docker: Number((leasesPerMin / dockerPerMin).toFixed(3)) }));
  } finally {
    rpc.destroy();
    const instance = daemon.info.instanceId;
    await daemon.stop();
    const { stdout } = await sh('docker', ['ps', '-aq', '--filter', `name=provider-lease-${instance}-`]).catch(() => ({ stdout: '' }));
    const ids = stdout.split('\n').filter(Boolean);
    if (ids.length > 0) await sh('docker', ['rm', '-f', ...ids]).catch(() => undefined);
    const nets = await sh('docker', ['network', 'ls', '-q', '--filter', `name=provider-lease-${instance}-`]).catch(() => ({ stdout: '' }));
    const netIds = nets.stdout.split('\n').filter(Boolean);
    if (netIds.length > 0) await sh('docker', ['network', 'rm', ...netIds]).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
