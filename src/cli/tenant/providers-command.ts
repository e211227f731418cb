import type { Command } from 'commander';
import { formatUnits } from 'ethers';
import { z } from 'zod';
import { formatBytes } from '../../util/bytes';
import { table } from '../../util/text-table';
import type { CliIo } from '../context';
import { parseFlags } from '../flags';
import { discoverProviders } from './discovery';
import { filterProviders, gpuPrice, PROVIDER_SORTS, sortProviders, type ProviderFilter, type ProviderListing, type ProviderSort } from './offers';
import { toJson, withTenantEnv } from './session';

const optionsSchema = z.object({
  gpu: z.string().min(1).max(128).optional(),
  region: z.string().min(1).max(64).optional(),
  maxCpuPrice: z.string().regex(/^\d{1,78}$/, 'expected token base units per CPU-second').transform(BigInt).optional(),
  sort: z.enum(PROVIDER_SORTS as [ProviderSort, ...ProviderSort[]]).default('price'),
  all: z.boolean().optional(),
  offerTimeout: z.coerce.number().int().min(100).max(60_000).default(5_000),
});

/** `provider tenant providers`: the registry with live offers, filtered and sorted. */
export function registerProvidersCommand(group: Command, io: CliIo): void {
  group
    .command('providers')
    .description('registered providers with their live offers: free CPU, memory and GPUs, prices, region, reachability, TLS pin')
    .option('--gpu <model>', 'only providers with a free GPU whose model contains this (e.g. H100)')
    .option('--region <region>', 'only providers in this region')
    .option('--max-cpu-price <units>', 'only providers asking at most this per CPU-second (token base units)')
    .option('--sort <key>', `order by ${PROVIDER_SORTS.join(', ')} (default price: a 1-core, 1 GiB lease's ceiling per second)`)
    .option('--all', 'list unreachable providers too')
    .option('--offer-timeout <ms>', 'longest wait for each provider\'s offer (default 5000)')
    .action(async (raw: Record<string, unknown>, command: Command) => {
      const options = parseFlags(optionsSchema, raw, 'tenant providers');
      await withTenantEnv(io, command, async (env) => {
        const found = await discoverProviders(env, { timeoutMs: options.offerTimeout, clock: io.clock });
        const filter: ProviderFilter = {
          ...(options.gpu ? { gpu: options.gpu } : {}),
          ...(options.region ? { region: options.region } : {}),
          ...(options.maxCpuPrice !== undefined ? { maxCpuPrice: options.maxCpuPrice } : {}),
          reachableOnly: options.all !== true,
        };
        const listed = sortProviders(filterProviders(found, filter), options.sort, undefined, options.gpu);
        if (env.flags.json) env.ctx.print(toJson({ marketplace: env.marketplace.address, chainId: env.chain.chainId, registered: found.length, providers: listed }));
        else io.stdout.write(formatProviders(listed, found.length, options.gpu));
      });
    });
}

export function formatProviders(listed: readonly ProviderListing[], registered: number, gpu?: string): string {
  if (listed.length === 0) return `no provider matches (${registered} registered and active)\n`;
  const rows = [['PROVIDER', 'REGION', 'FREE CPU', 'FREE MEMORY', 'GPUS FREE', 'CPU-S', 'GIB-S', 'GPU-S', 'API', 'TLS PIN']];
  for (const l of listed) {
    const o = l.offer;
    const api = o ? `${l.apiUrl} (${l.latencyMs ?? '?'} ms${o.accepting ? '' : ', draining'})` : `${l.apiUrl} (unreachable: ${l.unreachable?.code ?? '?'})`;
    rows.push([
      l.provider,
      o?.region ?? l.region ?? '-',
      o ? `${(o.free.cpuMillis / 1000).toFixed(1)} cores` : '-',
      o ? formatBytes(o.free.memoryBytes) : '-',
      o ? (o.free.gpus.length === 0 ? '0' : o.free.gpus.map((g) => `${g.count}x ${g.model}${g.profile ? ` ${g.profile}` : ''}`).join(', ')) : '-',
      o ? tokens(BigInt(o.rateCard.perCpuSecond)) : '-',
      o ? tokens(BigInt(o.rateCard.perGiBMemorySecond)) : '-',
      o ? tokens(gpuPrice(o, gpu)) : '-',
      api,
      l.tlsPin ? `${l.tlsPin.slice(0, 23)}…` : '-',
    ]);
  }
  return `${table(rows).join('\n')}\n(prices in tokens per second of use; ${listed.length} of ${registered} registered providers shown)\n`;
}

/** 18-decimal tokens, short: 0.000000001 rather than 1000000000 base units. */
function tokens(units: bigint): string {
  return formatUnits(units, 18).replace(/\.0$/, '');
}
