import { z } from 'zod';
import { ProviderError } from '../errors';
import { parseManifest } from '../runtime';
import type { ProviderMetrics } from './metrics';
import type { RequestRateLimiter } from './rate-limit';
import { errorResponse, type Route } from './server';
import type { LogQuery, OperatorService, ProviderService } from './service';
import {
  checkpointViewWire,
  countersignBodyWire,
  daemonStatusWire,
  earningsWire,
  healthWire,
  leaseIdParam,
  leaseViewWire,
  logEntryWire,
  logQueryWire,
  offerWire,
  operatorLeaseDetailWire,
  operatorLeasesWire,
  quoteResponseWire,
  seqParam,
  usageViewWire,
  withdrawBodyWire,
  withdrawResultWire,
  type LogEnd,
} from './wire';

/** How long POST /v1/operator/withdraw waits for its transaction unless the body says otherwise. */
const WITHDRAW_WAIT_SECONDS = 60;

export interface ProviderRoutesDeps {
  service: ProviderService;
  metrics: ProviderMetrics;
  /** Limits quote requests per tenant and per address; none in tests of the routes alone. */
  limiter?: RequestRateLimiter;
}

/**
 * The routes of DESIGN.md §3.2 (the log WebSocket is LogStreamServer). Each handler turns the
 * request into one ProviderService call and encodes its result through the wire schema; the
 * service does admission and the lease-tenant check.
 */
export function providerRoutes({ service, metrics, limiter }: ProviderRoutesDeps): Route<never>[] {
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
    ...operatorRoutes(service),
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
      handler: async ({ body, tenant, remoteAddress }) => {
        // Before the manifest is read: a flood is refused for the least work.
        limiter?.check('quote', tenantOf(tenant), remoteAddress);
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

/**
 * The operator's routes (`provider leases`, `logs`, `earnings`, `withdraw` call them): every
 * lease whoever its tenant, and the provider's money. Loopback (or this host's own address) only.
 */
function operatorRoutes(service: OperatorService): Route<any>[] { // eslint-disable-line @typescript-eslint/no-explicit-any
  return [
    {
      method: 'GET',
      path: '/v1/operator/leases',
      auth: 'operator',
      handler: async () => ({ json: z.encode(operatorLeasesWire, { leases: await service.operatorLeases() }) }),
    },
    {
      method: 'GET',
      path: '/v1/operator/leases/:id',
      auth: 'operator',
      handler: async ({ params }) => ({ json: z.encode(operatorLeaseDetailWire, await service.operatorLease(param(leaseIdParam, params.id, 'id'))) }),
    },
    {
      method: 'GET',
      path: '/v1/operator/leases/:id/logs',
      auth: 'operator',
      // NDJSON: one logEntryWire line per log line, then one logEndWire line, as the WebSocket sends them.
      handler: async ({ params, query, signal }) => {
        const leaseId = param(leaseIdParam, params.id, 'id');
        const logQuery = parseLogQuery(query);
        // An unknown lease is a 404 before the stream (and its 200) begins.
        await service.operatorLease(leaseId);
        return { stream: ndjsonLogs(service.operatorLogs(leaseId, logQuery, signal), signal) };
      },
    },
    {
      method: 'GET',
      path: '/v1/operator/earnings',
      auth: 'operator',
      handler: async () => ({ json: z.encode(earningsWire, await service.earnings()) }),
    },
    {
      method: 'POST',
      path: '/v1/operator/withdraw',
      auth: 'operator',
      body: withdrawBodyWire,
      handler: async ({ body, signal }) => {
        const wait = body?.waitSeconds ?? WITHDRAW_WAIT_SECONDS;
        return { json: z.encode(withdrawResultWire, await service.withdraw(wait * 1000, signal)) };
      },
    } satisfies Route<z.output<typeof withdrawBodyWire>>,
  ];
}

async function* ndjsonLogs(entries: AsyncIterable<z.output<typeof logEntryWire>>, signal: AbortSignal): AsyncIterable<string> {
  let end: LogEnd = { end: true, reason: 'end-of-log' };
  try {
    for await (const entry of entries) {
      if (signal.aborted) break;
      yield `${JSON.stringify(z.encode(logEntryWire, entry))}\n`;
    }
  } catch (err) {
    if (!signal.aborted) {
      const { body } = errorResponse(err);
      end = { end: true, reason: 'error', error: { code: body.error.code, message: body.error.message } };
    }
  }
  // A client that went away reads nothing more; one still there is being shut down on.
  if (signal.aborted) end = { end: true, reason: 'shutdown' };
  yield `${JSON.stringify(end)}\n`;
}

/** `?tail=N&follow=1&since=T` of a log stream, each at most once; anything else is REQUEST_INVALID. */
export function parseLogQuery(search: URLSearchParams): LogQuery {
  const keys = [...search.keys()];
  const repeated = keys.find((key, i) => keys.indexOf(key) !== i);
  if (repeated) throw new ProviderError('REQUEST_INVALID', `${repeated}: given more than once`, { input: repeated, fix: 'send each query parameter once' });
  const parsed = logQueryWire.safeParse(Object.fromEntries(search));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.code === 'unrecognized_keys' ? issue.keys[0] : issue?.path.map(String).join('.');
    throw new ProviderError('REQUEST_INVALID', `query: ${field ?? ''}: ${issue?.message ?? 'invalid'}`, {
      input: field,
      fix: 'use tail=<lines>, follow=0|1 and since=<unix seconds>',
    });
  }
  const query: LogQuery = { follow: parsed.data.follow };
  if (parsed.data.tail !== undefined) query.tail = parsed.data.tail;
  if (parsed.data.since !== undefined) query.since = parsed.data.since;
  return query;
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
