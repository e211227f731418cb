import { silentLogger } from '../../../src/log';
import { RouterPortMapping, type NatDiscovery, type NatGateway } from '../../../src/reachability';
import { manualClock } from '../../../src/util/clock';

/** A router that records what it was asked; `refuse` makes map() fail. */
function aRouter(options: { refuse?: boolean } = {}) {
  const calls: string[] = [];
  const gateway: NatGateway = {
    kind: 'upnp',
    description: 'UPnP-IGD at 192.168.77.1',
    localAddress: '192.168.77.2',
    map: async (port, host, { externalPort, ttlSeconds }) => {
      calls.push(`map ${host}:${port} -> ${externalPort} ttl ${ttlSeconds}`);
      if (options.refuse) throw new Error('ConflictInMappingEntry');
      return { externalHost: '11.0.0.1', externalPort };
    },
    unmap: async (port) => {
      calls.push(`unmap ${port}`);
    },
    close: async () => {
      calls.push('close');
    },
  };
  const discovery: NatDiscovery = { find: async () => gateway };
  return { calls, discovery };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('RouterPortMapping', () => {
  it('maps the API port, renews it at half its lease time, and removes it on stop', async () => {
    const clock = manualClock(0);
    const { calls, discovery } = aRouter();
    const mapping = await RouterPortMapping.create(discovery, { port: 8420, ttlSeconds: 600, timeoutMs: 1000 }, { clock, log: silentLogger() });
    expect(mapping?.externalHost).toBe('11.0.0.1');
    expect(calls).toEqual(['map 192.168.77.2:8420 -> 8420 ttl 600']);
    clock.advance(299_000);
    await flush();
    expect(calls).toHaveLength(1);
    clock.advance(1_000);
    await flush();
    expect(calls).toEqual(['map 192.168.77.2:8420 -> 8420 ttl 600', 'map 192.168.77.2:8420 -> 8420 ttl 600']);
    await mapping!.remove();
    expect(calls.slice(2)).toEqual(['unmap 8420', 'close']);
    clock.advance(600_000);
    await flush();
    expect(calls).toHaveLength(4);
  });

  it('is undefined when no gateway answers, and says why when the router refuses', async () => {
    const clock = manualClock(0);
    const none = await RouterPortMapping.create({ find: async () => undefined }, { port: 8420, ttlSeconds: 600, timeoutMs: 1000 }, { clock, log: silentLogger() });
    expect(none).toBeUndefined();
    const { calls, discovery } = aRouter({ refuse: true });
    await expect(RouterPortMapping.create(discovery, { port: 8420, ttlSeconds: 600, timeoutMs: 1000 }, { clock, log: silentLogger() })).rejects.toMatchObject({ code: 'UPNP_FAILED' });
    expect(calls).toContain('close');
  });
});
