import { Wallet } from 'ethers';
import { createOperatorApi, ProviderMetrics, type ApiServer } from '../../../src/api';
import { marketplaceDomain } from '../../../src/chain';
import { silentLogger } from '../../../src/log';
import { generateSelfSigned } from '../../../src/tls';
import { CHAIN_ID, send, startApi, type ApiHarness } from '../../support/api-harness';
import { FakeProviderService } from '../../support/fake-provider-service';

let operator: ApiServer;
let port: number;
let publicApi: ApiHarness;

beforeAll(async () => {
  const providerKey = Wallet.createRandom();
  const marketplace = Wallet.createRandom().address;
  const service = new FakeProviderService({ providerKey, domain: marketplaceDomain(CHAIN_ID, marketplace), chainId: CHAIN_ID, marketplace });
  operator = createOperatorApi({ service, metrics: new ProviderMetrics(), maxBodyBytes: 64 * 1024, log: silentLogger() });
  port = (await operator.listen('127.0.0.1', 0)).port;
  const pair = await generateSelfSigned({ hosts: ['127.0.0.1'], validityDays: 2, now: Date.now() });
  publicApi = await startApi({ service, tls: { cert: pair.certPem, key: pair.keyPem } });
});

afterAll(async () => {
  await operator.close();
  await publicApi.close();
});

describe('the operator listener (plain HTTP on loopback)', () => {
  it('answers the operator\'s routes and health, for the commands on this machine', async () => {
    expect((await send(port, 'GET', '/v1/status')).status).toBe(200);
    expect((await send(port, 'GET', '/v1/operator/leases')).status).toBe(200);
    expect((await send(port, 'GET', '/healthz')).status).toBe(200);
  });

  it('does not carry tenant routes: a manifest never travels in clear', async () => {
    const quote = await send(port, 'POST', '/v1/quotes', JSON.stringify({ image: 'busybox' }), { 'content-type': 'application/json' });
    expect(quote.status).toBe(404);
    expect(quote.body.error.code).toBe('ROUTE_NOT_FOUND');
    expect((await send(port, 'GET', '/v1/leases/7')).status).toBe(404);
  });

  it('is the only plain door: the public port speaks TLS and drops plain HTTP', async () => {
    await expect(send(publicApi.port, 'GET', '/healthz')).rejects.toThrow(/socket hang up|ECONNRESET|parse/i);
  });
});
