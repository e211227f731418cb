import { configSchema, describeChange, diffConfig, ReloadableConfig, type ProviderConfig } from '../../../src/config';

function config(overrides: Record<string, unknown> = {}): ProviderConfig {
  return configSchema.parse({ dataDir: '/var/lib/provider', ...overrides });
}

describe('ReloadableConfig (SIGHUP)', () => {
  it('makes new pricing and admission visible through the view modules already hold', () => {
    const live = new ReloadableConfig(config());
    const { view } = live;
    const outcome = live.apply(config({ pricing: { perCpuSecond: '5' }, admission: { tenants: { deny: ['0x00000000000000000000000000000000000000aa'] } } }));
    expect(view.pricing.perCpuSecond).toBe('5');
    expect(view.admission.tenants.deny).toEqual(['0x00000000000000000000000000000000000000aa']);
    expect(outcome.applied.map((c) => c.key).sort()).toEqual(['admission.tenants.deny', 'pricing.perCpuSecond']);
    expect(outcome.needRestart).toEqual([]);
  });

  it('names every other change as needing a restart and keeps what the daemon started with', () => {
    const live = new ReloadableConfig(config({ api: { port: 8420 } }));
    const outcome = live.apply(config({ api: { port: 9000 }, region: 'eu-west', pricing: { perGpuSecond: '9' } }));
    expect(live.view.api.port).toBe(8420);
    expect(live.view.region).not.toBe('eu-west');
    expect(live.view.pricing.perGpuSecond).toBe('9');
    expect(outcome.needRestart.map(describeChange)).toEqual(['api.port: 8420 → 9000', 'region: unspecified → eu-west']);
  });

  it('names the admission keys read once at start (rate limits, funding cache) as needing a restart', () => {
    const live = new ReloadableConfig(config());
    const outcome = live.apply(config({ admission: { maxQuoteShare: 0.25, fundingCacheSeconds: 60, rateLimit: { perTenant: { perMinute: 5 } } } }));
    expect(outcome.applied.map((c) => c.key)).toEqual(['admission.maxQuoteShare']);
    expect(outcome.needRestart.map((c) => c.key).sort()).toEqual(['admission.fundingCacheSeconds', 'admission.rateLimit.perTenant.perMinute']);
  });

  it('compares a second reload with the first, not with the start', () => {
    const live = new ReloadableConfig(config());
    live.apply(config({ pricing: { perCpuSecond: '5' } }));
    const again = live.apply(config({ pricing: { perCpuSecond: '5' } }));
    expect(again).toEqual({ applied: [], needRestart: [] });
    const back = live.apply(config());
    expect(back.applied.map(describeChange)).toEqual([expect.stringMatching(/^pricing\.perCpuSecond: 5 → \d+$/)]);
  });

  it('never shows a secret in a change', () => {
    const network = (rpcUrl: string) => ({
      network: { rpcUrl, chainId: 1, marketplaceAddress: '0x00000000000000000000000000000000000000aa' },
    });
    const changes = diffConfig(config(network('https://mainnet.example/v3/KEY1')), config(network('https://mainnet.example/v3/KEY2')));
    expect(changes).toEqual([{ key: 'network.rpcUrl', from: '[redacted]', to: '[redacted]' }]);
    // Configuring a network where there was none (devnet → real network) names each key of it.
    const added = diffConfig(config(), config(network('https://mainnet.example/v3/KEY1')));
    expect(added).toContainEqual({ key: 'network.rpcUrl', from: '[redacted]', to: '[redacted]' });
    expect(JSON.stringify(added)).not.toContain('KEY1');
  });
});
