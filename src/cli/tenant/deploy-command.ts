import type { Command } from 'commander';
import { getAddress, isAddress } from 'ethers';
import { z } from 'zod';
import type { LeaseView } from '../../api';
import { ceilingRate } from '../../chain';
import { ProviderError } from '../../errors';
import type { Manifest } from '../../runtime';
import { isRefusedWith, type TenantClient } from '../../tenant';
import type { CliIo } from '../context';
import { parseFlags } from '../flags';
import { discoverProviders } from './discovery';
import { loadManifestFile } from './manifest-file';
import { filterProviders, pricePerSecond, sortProviders, whyNoneFits } from './offers';
import { toJson, withTenantEnv, type TenantEnv } from './session';

const optionsSchema = z.object({
  provider: z.string().min(1).max(512).optional(),
  image: z.string().min(1).max(512).optional(),
  deposit: z.string().regex(/^\d{1,78}$/, 'expected token base units').transform(BigInt).optional(),
  wait: z.boolean().default(true),
  waitTimeout: z.coerce.number().int().min(1).max(3_600).default(300),
});

/** States a lease passes before it runs; a lease seen in any later state ran (or is past running). */
const STARTED: readonly LeaseView['state'][] = ['running', 'stopping', 'finishing', 'settling', 'settled'];
const NEVER_RAN = new Set(['pull-failed', 'start-failed', 'refused']);
const POLL_MS = 500;

/**
 * `provider tenant deploy <manifest.yaml>`: quote (the given provider, or the cheapest active one
 * whose offer fits), check the quote (TenantClient.quote verifies signature, hash, prices), approve
 * and open on-chain with the deposit the quote can claim at most, wait for it to run (a line per
 * state), print its endpoints and the lease id.
 */
export function registerDeployCommand(group: Command, io: CliIo): void {
  group
    .command('deploy')
    .description('quote, verify, approve and open a lease for a manifest, wait until it runs, print its endpoints')
    .argument('<manifest>', 'the manifest: YAML (see `provider tenant manifest schema`, examples/hello.yaml)')
    .option('--provider <address|url>', 'the provider (its address in the registry, or its API URL); default: the cheapest whose offer fits')
    .option('--image <ref>', 'run this image instead of the manifest\'s (e.g. the local provider-test/busybox:latest)')
    .option('--deposit <units>', 'escrow deposit in token base units (default: the most the quote can ever claim)')
    .option('--no-wait', 'return once the lease is opened on-chain')
    .option('--wait-timeout <seconds>', 'longest wait for the lease to run (default 300)')
    .action(async (file: string, raw: Record<string, unknown>, command: Command) => {
      const options = parseFlags(optionsSchema, raw, 'tenant deploy');
      const manifest = loadManifestFile(file, options.image ? { image: options.image } : {});
      await withTenantEnv(io, command, async (env) => {
        const json = env.flags.json === true;
        const say = (line: string): void => {
          io.stderr.write(`${line}\n`);
        };
        say(`manifest ${file}: ${manifest.image}, ${manifest.resources.cpuMillis / 1000} CPU, ${manifest.resources.memoryBytes} bytes, ${manifest.resources.gpus.count} GPU, up to ${manifest.maxDurationSeconds} s`);
        const chosen = await chooseProvider(env, manifest, options.provider, say);
        const client = env.clientFor(chosen.apiUrl, chosen.provider);
        say(`asking ${chosen.provider ?? chosen.apiUrl} for a quote`);
        const quote = await client.quote(manifest);
        const ceiling = ceilingRate(quote.quote.rates, quote.quote.allocation);
        const deposit = options.deposit ?? ceiling * quote.quote.maxDuration;
        say(`quote verified: signed by ${quote.quote.provider}, image ${quote.image.digest}, at most ${ceiling} units/s for ${quote.quote.maxDuration} s`);
        say(`opening the lease on-chain with a deposit of ${deposit} units (what is not used comes back when it settles)`);
        const opened = await client.open(quote, deposit);
        say(`lease ${opened.leaseId} opened (tx ${opened.txHash})`);
        const view = options.wait ? await waitRunning(client, opened.leaseId, options.waitTimeout * 1000, say) : await client.lease(opened.leaseId);
        const host = new URL(chosen.apiUrl).hostname;
        const endpoints = view.ports.map((p) => ({ ...p, address: `${host}:${p.hostPort}` }));
        if (json) {
          env.ctx.print(toJson({ leaseId: opened.leaseId, provider: quote.quote.provider, apiUrl: chosen.apiUrl, txHash: opened.txHash, deposit, state: view.state, image: quote.image, endpoints }));
          return;
        }
        env.ctx.print(`lease ${opened.leaseId} ${view.state} on ${quote.quote.provider}`);
        for (const e of endpoints) env.ctx.print(`  ${e.containerPort}/${e.protocol} -> ${e.address}`);
        env.ctx.print(`  logs:  provider tenant logs ${opened.leaseId} --follow`);
        env.ctx.print(`  usage: provider tenant usage ${opened.leaseId} --verify`);
        env.ctx.print(`  close: provider tenant close ${opened.leaseId}`);
      });
    });
}

async function chooseProvider(env: TenantEnv, manifest: Manifest, named: string | undefined, say: (line: string) => void): Promise<{ apiUrl: string; provider?: string }> {
  if (named && /^https?:\/\//.test(named)) return { apiUrl: named };
  if (named) {
    if (!isAddress(named)) throw new ProviderError('USAGE', `--provider ${named}: expected a provider address (0x...) or its API URL`, { fix: 'see `provider tenant providers`' });
    const registration = await env.directory.registration(named);
    if (!registration.active) throw new ProviderError('QUOTE_UNTRUSTED', `${named} is not an active provider on ${env.marketplace.address}`, { fix: 'pick one `provider tenant providers` lists' });
    return { apiUrl: registration.apiUrl, provider: getAddress(named) };
  }
  const need = { cpuMillis: manifest.resources.cpuMillis, memoryBytes: manifest.resources.memoryBytes, gpus: manifest.resources.gpus.count, gpuModel: manifest.resources.gpus.model };
  const found = await discoverProviders(env, { timeoutMs: 5_000, clock: env.ctx.io.clock });
  const fitting = sortProviders(filterProviders(found, { fits: need }), 'price', need, need.gpuModel);
  const best = fitting[0];
  if (!best?.offer) {
    const why = whyNoneFits(found, env.marketplace.address);
    throw new ProviderError('CAPACITY_EXHAUSTED', why.message, { fix: why.fix });
  }
  say(`cheapest fitting provider of ${found.length}: ${best.provider} at ${best.apiUrl} (at most ${pricePerSecond(best.offer, need)} units/s)`);
  return { apiUrl: best.apiUrl, provider: best.provider };
}

/** Polls the lease until it runs (or ran), saying each new state; fails when it will never run. */
export async function waitRunning(client: TenantClient, leaseId: bigint, timeoutMs: number, say: (line: string) => void): Promise<LeaseView> {
  const deadline = AbortSignal.timeout(timeoutMs);
  let last = '';
  for (;;) {
    const view = await client.lease(leaseId, deadline).catch((err: unknown) => {
      // The provider learns of the open from the chain: until its follower sees it, the lease is unknown there.
      if (deadline.aborted) throw err;
      if (isRefusedWith(err, 'LEASE_NOT_FOUND')) return undefined;
      throw err;
    });
    const seen = view ? `${view.state}${view.container ? ` (container ${view.container.status})` : ''}` : 'not yet seen by the provider';
    if (seen !== last) say(`  ${seen}`);
    last = seen;
    if (view) {
      if (view.state === 'failed' || view.state === 'rejected' || (view.endReason !== null && NEVER_RAN.has(view.endReason))) {
        throw new ProviderError('PROVIDER_REFUSED', `lease ${leaseId} did not run: ${view.state}${view.endReason ? ` (${view.endReason})` : ''}`, {
          fix: 'the deposit not used comes back once it settles; see `provider tenant status` for its state',
        });
      }
      if (view.startedAt !== null || STARTED.includes(view.state)) return view;
    }
    if (deadline.aborted) {
      throw new ProviderError('OPERATION_ABORTED', `lease ${leaseId} was not running after ${timeoutMs / 1000} s (last: ${seen})`, {
        fix: 'it may still start (a large image); follow it with `provider tenant status`',
      });
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
