import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRpcProvider, marketplaceAt } from '../../../src/chain';
import { isProviderError } from '../../../src/errors';

/** An RPC endpoint that takes every request and never answers: a wedged node. */
let server: Server;
let url: string;
beforeAll(async () => {
  server = createServer(() => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('contract reads against a node that never answers', () => {
  it('fail with RPC_TIMEOUT within their bound instead of holding the caller', async () => {
    const rpc = createRpcProvider(url, { chainId: 31337 });
    const market = marketplaceAt('0x5FbDB2315678afecb367f032d93F642f64180aa3', rpc);
    const started = Date.now();
    const err = await market.read('challengeWindow', [], { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(isProviderError(err, 'RPC_TIMEOUT')).toBe(true);
    expect(Date.now() - started).toBeLessThan(3_000);
    rpc.destroy();
  });

  it('fail at once when the caller aborts', async () => {
    const rpc = createRpcProvider(url, { chainId: 31337 });
    const market = marketplaceAt('0x5FbDB2315678afecb367f032d93F642f64180aa3', rpc);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutting down')), 50);
    await expect(market.read('challengeWindow', [], { signal: controller.signal, timeoutMs: 60_000 })).rejects.toThrow('shutting down');
    rpc.destroy();
  });
});
