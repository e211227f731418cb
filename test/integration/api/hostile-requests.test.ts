import { Wallet } from 'ethers';
import { hostileRequests, sendHostile, type HostileRequest } from '../../support/hostile-requests';
import { CHAIN_ID, send, startApi, type ApiHarness } from '../../support/api-harness';

const tenant = Wallet.createRandom();
const MAX_BODY = 16 * 1024;

describe('the provider API under hostile requests', () => {
  let h: ApiHarness;
  let requests: HostileRequest[];

  beforeAll(async () => {
    h = await startApi({ maxBodyBytes: MAX_BODY });
    h.service.addLease('42', tenant.address);
    requests = await hostileRequests({ tenant, chainId: CHAIN_ID, leaseId: '42', maxBodyBytes: MAX_BODY });
  });

  afterAll(() => h.close());

  it('has about 200 of them, each named once', () => {
    expect(requests.length).toBeGreaterThanOrEqual(190);
    expect(new Set(requests.map((r) => r.name)).size).toBe(requests.length);
  });

  it('refuses each with its code and status, quotes nothing, and keeps serving', async () => {
    const wrong: string[] = [];
    for (const req of requests) {
      const reply = await sendHostile('127.0.0.1', h.port, req);
      if (reply.status !== req.expect.status || reply.code !== req.expect.code) {
        wrong.push(`${req.name}: got ${reply.status} ${reply.code ?? reply.body.slice(0, 80)}, expected ${req.expect.status} ${req.expect.code}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(h.service.quotes).toHaveLength(0);
    expect((await send(h.port, 'GET', '/healthz')).status).toBe(200);
  });
});
