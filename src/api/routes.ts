import { z } from 'zod';
import { ProviderError } from '../errors';
import { parseManifest } from '../runtime';
import type { ProviderMetrics } from './metrics';
import type { Route } from './server';
import type { ProviderService } from './service';
import {
  checkpointViewWire,
  countersignBodyWire,
  daemonStatusWire,
  healthWire,
  leaseIdParam,
  leaseViewWire,
  offerWire,
  quoteResponseWire,
  seqParam,
  usageViewWire,
} from './wire';

export interface ProviderRoutesDeps {
  service: ProviderService;
  metrics: ProviderMetrics;
}

/**
 * The routes of DESIGN.md §3.2 (the log WebSocket is LogStreamServer). Each handler turns the
 * request into one ProviderService call and encodes its result through the wire schema; the
 * service does admission and the lease-tenant check.
 */
export function providerRoutes({ service, metrics }: ProviderRoutesDeps): Route<never>[] {
  const routes: Route<any>[] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    {
      method: 'GET',
      path: '/healthz',
      auth: 'none',
      // Liveness only: answers while the event loop turns, touches neither Docker nor the chain.
      handler: () => ({ json: z.encode(healthWire, { status: 'ok' }) }),
    },
    {
      method: 'GET',
      path: '/metrics',
      auth: 'none',
      handler: async () => ({ text: await metrics.render(), contentType: metrics.contentType }),
    },
    {
      method: 'GET',
      path: '/v1/status',
      auth: 'operator',
      handler: async () => ({ json: z.encode(daemonStatusWire, await service.status()) }),
    },
    {
      method: 'GET',
      path: '/v1/offer',
      auth: 'none',
      handler: async () => ({ json: z.encode(offerWire, await service.offer()) }),
    },
    {
      method: 'POST',
      path: '/v1/quotes',
      auth: 'tenant',
      // Any JSON here; parseManifest refuses with MANIFEST_INVALID naming the field.
      body: z.unknown(),
      handler: async ({ body, tenant }) => {
        const manifest = parseManifest(body);
        return { status: 201, json: z.encode(quoteResponseWire, await service.quote(tenantOf(tenant), manifest)) };
      },
    } satisfies Route<unknown>,
    {
      method: 'GET',
      path: '/v1/leases/:id',
      auth: 'tenant',
      handler: async ({ params, tenant }) => ({
        json: z.encode(leaseViewWire, await service.lease(param(leaseIdParam, params.id, 'id'), tenantOf(tenant))),
      }),
    },
    {
      method: 'GET',
      path: '/v1/leases/:id/usage',
      auth: 'tenant',
      handler: async ({ params, tenant }) => ({
        json: z.encode(usageViewWire, await service.usage(param(leaseIdParam, params.id, 'id'), tenantOf(tenant))),
      }),
    },
    {
      method: 'POST',
      path: '/v1/leases/:id/checkpoints/:seq/countersign',
      auth: 'tenant',
      body: countersignBodyWire,
      handler: async ({ params, body, tenant }) => {
        const view = await service.countersign(
          param(leaseIdParam, params.id, 'id'),
          param(seqParam, params.seq, 'seq'),
          tenantOf(tenant),
          body.signature,
        );
        return { json: z.encode(checkpointViewWire, view) };
      },
    } satisfies Route<z.output<typeof countersignBodyWire>>,
  ];
  return routes as Route<never>[];
}

/** A path parameter through its schema; a bad one is REQUEST_INVALID naming it. */
export function param<T>(schema: z.ZodType<T, string>, value: string | undefined, name: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ProviderError('REQUEST_INVALID', `${name}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, { input: name, fix: `send a valid ${name} in the path` });
}

function tenantOf(tenant: string | undefined): string {
  // ApiServer authenticates every `auth: 'tenant'` route before its handler runs.
  if (!tenant) throw new ProviderError('INTERNAL', 'tenant route reached without a tenant');
  return tenant;
}
