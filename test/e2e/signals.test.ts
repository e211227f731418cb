import { readFileSync, writeFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { marketplaceAt } from '../../src/chain';
import { DaemonProcess, until } from './daemon-process';

const sh = promisify(execFile);
jest.setTimeout(240_000);

const TOKEN = 10n ** 18n;
const LONG_WORKLOAD = {
  image: 'provider-test/busybox:latest',
  command: ['sh', '-c', 'echo started; sleep 600'],
  resources: { cpuMillis: 250, memoryBytes: 32 * 2 ** 20 },
  maxDurationSeconds: 900,
};

async function containerState(leaseId: bigint, daemon: DaemonProcess): Promise<string | undefined> {
  try {
    const { stdout } = await sh('docker', ['inspect', '-f', '{{.State.Status}}', `provider-lease-${daemon.instance()}-${leaseId}`]);
    return stdout.trim();
  } catch {
    return undefined; // removed
  }
}

function messages(daemon: DaemonProcess): string[] {
  return daemon.logLines().map((l) => String(l.msg));
}

describe('provider start: SIGHUP reloads pricing and policy', () => {
  let daemon: DaemonProcess;
  afterAll(async () => {
    await daemon?.cleanup();
  });

  it('applies new prices to new quotes and the on-chain metadata, names what needs a restart, and keeps the old config when the new one is broken', async () => {
    daemon = await DaemonProcess.create('sighup');
    const ready = await daemon.start();
    const { client, rpc } = daemon.tenant();
    try {
      const before = await client.offer();
      const original = YAML.parse(readFileSync(daemon.configPath, 'utf8')) as Record<string, unknown>;

      // A new CPU price, a denied image and a new API port (not reloadable).
      const changed = {
        ...original,
        pricing: { perCpuSecond: '7777' },
        admission: { images: { deny: ['docker.io/library/*'] } },
        api: { ...(original.api as object), port: 1 },
      };
      writeFileSync(daemon.configPath, YAML.stringify(changed));
      daemon.signal('SIGHUP');
      const offer = await until('the new price', async () => {
        const now = await client.offer();
        return now.rateCard.perCpuSecond === '7777' ? now : undefined;
      }, 15_000, 200);
      expect(offer.rateCard.perCpuSecond).not.toBe(before.rateCard.perCpuSecond);
      // A quote made now is priced from the new card.
      const quote = await client.quote({ ...LONG_WORKLOAD, resources: { cpuMillis: 1000, memoryBytes: 32 * 2 ** 20 } });
      expect(quote.quote.rates.perCpuSecond).toBe(7777n);
      // The new policy refuses what the old one took.
      await expect(client.quote({ ...LONG_WORKLOAD, image: 'docker.io/library/busybox:1.36' })).rejects.toMatchObject({ remoteCode: 'IMAGE_DENIED' });
      const logged = messages(daemon);
      expect(logged).toContain(`config reloaded: pricing.perCpuSecond: ${before.rateCard.perCpuSecond} → 7777`);
      expect(logged.some((m) => m.startsWith('config change not applied (takes a restart): api.port:'))).toBe(true);
      // The API still listens where it started.
      expect((await daemon.fetch('/healthz')).status).toBe(200);
      // The advertised metadata follows the prices.
      const market = marketplaceAt(ready.marketplace, rpc);
      await until('the on-chain metadata', async () => {
        const info = (await market.read('getProvider', [ready.provider])) as unknown as { metadata: string };
        return (JSON.parse(info.metadata) as { pricing: { perCpuSecond: string } }).pricing.perCpuSecond === '7777' || undefined;
      }, 30_000, 500);

      // Broken: a typo'd key and a price that is not a number. Nothing changes, the log says why.
      writeFileSync(daemon.configPath, YAML.stringify({ ...changed, pricing: { perCpuSecond: 'lots' }, admision: {} }));
      daemon.signal('SIGHUP');
      const failure = await until('the reload failure', async () =>
        daemon.logLines().find((l) => String(l.msg).startsWith('config reload failed; keeping the running config')),
      15_000, 200);
      expect(String(failure.msg)).toContain('pricing.perCpuSecond');
      expect(String(failure.msg)).toContain('admision');
      expect((await client.offer()).rateCard.perCpuSecond).toBe('7777');
      await expect(client.quote({ ...LONG_WORKLOAD, image: 'docker.io/library/busybox:1.36' })).rejects.toMatchObject({ remoteCode: 'IMAGE_DENIED' });
      expect((await daemon.fetch('/healthz')).status).toBe(200);

      // Back to the first prices, then to the new ones again: each a new update on-chain, never
      // one found already done under the same content.
      const onChainPrice = async (price: string) =>
        until(`${price} on-chain`, async () => {
          const info = (await market.read('getProvider', [ready.provider])) as unknown as { metadata: string };
          return (JSON.parse(info.metadata) as { pricing: { perCpuSecond: string } }).pricing.perCpuSecond === price || undefined;
        }, 30_000, 500);
      writeFileSync(daemon.configPath, YAML.stringify(original));
      daemon.signal('SIGHUP');
      await onChainPrice(before.rateCard.perCpuSecond);
      writeFileSync(daemon.configPath, YAML.stringify(changed));
      daemon.signal('SIGHUP');
      await onChainPrice('7777');
    } finally {
      rpc.destroy();
    }
    expect(await daemon.stop()).toBe(0);
  });
});

describe('provider start: SIGTERM', () => {
  let daemon: DaemonProcess;
  afterEach(async () => {
    await daemon?.cleanup();
  });

  it('without --drain-timeout: no new quotes, the running lease keeps running, exit 0', async () => {
    daemon = await DaemonProcess.create('sigterm');
    await daemon.start();
    const { client, rpc } = daemon.tenant();
    try {
      const { leaseId } = await client.open(await client.quote(LONG_WORKLOAD), TOKEN);
      await until('running', async () => (await client.lease(leaseId)).state === 'running', 60_000);
      expect(await daemon.stop()).toBe(0);
      expect(await containerState(leaseId, daemon)).toBe('running');
    } finally {
      rpc.destroy();
    }
  });

  it('with --drain-timeout: the running lease gets the timeout, is ended (operator-drain) and billed on-chain, then exit 0', async () => {
    daemon = await DaemonProcess.create('drain');
    const ready = await daemon.start(90_000, ['--drain-timeout', '3']);
    let { client, rpc } = daemon.tenant();
    try {
      const { leaseId } = await client.open(await client.quote(LONG_WORKLOAD), TOKEN);
      await until('running', async () => (await client.lease(leaseId)).state === 'running', 60_000);
      // Let it run long enough to be metered.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      const signalledAt = Date.now();
      daemon.signal('SIGTERM');
      // Quotes stop at once; the API keeps serving the tenant during the drain.
      await until('quotes refused', async () => {
        try {
          await client.quote(LONG_WORKLOAD);
          return undefined;
        } catch (err) {
          return (err as { remoteCode?: string }).remoteCode === 'PROVIDER_DRAINING' || undefined;
        }
      }, 5_000, 100);
      const code = await daemon.exit;
      expect(code).toBe(0);
      const took = Date.now() - signalledAt;
      // The lease ran out its 3 s, then stop, the final checkpoint, the claim after the tenant's 6 s grace.
      expect(took).toBeGreaterThanOrEqual(3_000);

      expect(await containerState(leaseId, daemon)).not.toBe('running');
      const logged = daemon.logLines();
      const drained = logged.find((l) => String(l.msg).startsWith('drained:'));
      expect(drained).toMatchObject({ ended: [leaseId.toString()], billed: [leaseId.toString()], left: [] });
      expect(logged.find((l) => l.leaseId === leaseId.toString() && l.to === 'stopping')).toMatchObject({ reason: 'the operator drains this provider' });
      // Billed: the final checkpoint is claimed on-chain (the tenant did not countersign). The
      // devnet stopped with the daemon: start it again to ask the chain.
      rpc.destroy();
      await daemon.start();
      ({ client, rpc } = daemon.tenant());
      const market = marketplaceAt(ready.marketplace, rpc);
      // V2 keeps the pending claim in the lease: `pending` is what `paid` becomes once it is final.
      const lease = await market.read('getLease', [leaseId]);
      expect(lease.pending + lease.paid).toBeGreaterThan(0n);
    } finally {
      rpc.destroy();
    }
  });
});
