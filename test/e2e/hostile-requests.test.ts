import { Wallet } from 'ethers';
import { devPrivateKey } from '../../src/devnet';
import { hostileRequests, sendHostile } from '../support/hostile-requests';
import { daemonForTests, until, type DaemonProcess } from './daemon-process';

jest.setTimeout(180_000);

let daemon: DaemonProcess;
// ~220 requests from one key and one address, most of them quotes: above the quote rate limits,
// which this test is not about (test/e2e/quote-abuse tests them).
daemonForTests('hostile', (d) => (daemon = d), {
  admission: { rateLimit: { perTenant: { perMinute: 600, burst: 1000 }, perAddress: { perMinute: 600, burst: 1000 } } },
});

describe('provider start under hostile input', () => {
  it('refuses each of ~220 malformed or hostile manifests and requests with a clear error, changes nothing, and keeps serving', async () => {
    const { client, rpc } = daemon.tenant();
    try {
      // One real lease of the tenant, for the lease routes. It runs through the whole test, so the
      // capacity it holds is the same before and after (one that ended mid-way would free its own).
      const quote = await client.quote({
        image: 'provider-test/busybox:latest',
        command: ['sleep', '600'],
        resources: { cpuMillis: 100, memoryBytes: 32 * 2 ** 20 },
        maxDurationSeconds: 120,
      });
      const { leaseId } = await client.open(quote, 10n ** 18n);
      await until('the lease is known to the provider', async () => client.lease(leaseId).then(() => true), 30_000);
      const before = await client.offer();

      const url = new URL(daemon.ready!.apiUrl);
      const requests = await hostileRequests({ tenant: new Wallet(devPrivateKey(2)), chainId: daemon.ready!.chainId, leaseId: leaseId.toString(), maxBodyBytes: 1024 * 1024 });
      expect(requests.length).toBeGreaterThanOrEqual(200);
      const wrong: string[] = [];
      for (const req of requests) {
        const reply = await sendHostile(url.hostname, Number(url.port), req, url.protocol === 'https:');
        if (reply.status !== req.expect.status || reply.code !== req.expect.code) {
          wrong.push(`${req.name}: expected ${req.expect.status} ${req.expect.code}, got ${reply.status} ${reply.code ?? reply.body.slice(0, 120)}`);
        }
      }
      expect(wrong).toEqual([]);

      // Still serving, and nothing was reserved by what it refused.
      const after = await client.offer();
      expect(after.free.cpuMillis).toBe(before.free.cpuMillis);
      expect(after.free.memoryBytes).toBe(before.free.memoryBytes);
      const health = await daemon.fetch('/healthz');
      expect(health.status).toBe(200);
      await client.quote({ image: 'provider-test/busybox:latest', resources: { cpuMillis: 100, memoryBytes: 32 * 2 ** 20 }, maxDurationSeconds: 60 });
    } finally {
      rpc.destroy();
    }
  });
});
