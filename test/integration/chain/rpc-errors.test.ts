import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRpcProvider, describeRpcError } from '../../../src/chain';

describe('describeRpcError', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    // An RPC provider refusing the key, as hosted RPCs do; ethers puts the URL in its message.
    server = createServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"error":"invalid project id"}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('describes an RPC failure without the API key in its URL', async () => {
    const rpc = createRpcProvider(`${base}/v3/SUPERSECRETKEY?token=abc`, { chainId: 1 });
    const err = await rpc.getBlockNumber().then(
      () => undefined,
      (e: unknown) => e,
    );
    rpc.destroy();
    expect(String((err as Error).message)).toContain('SUPERSECRETKEY');
    const described = describeRpcError(err);
    expect(described).not.toMatch(/SUPERSECRETKEY|token=abc/);
    expect(described).toMatch(/\S/);
  });

  it('cuts any URL left in a plain error down to scheme and host', () => {
    expect(describeRpcError(new Error(`connect ECONNREFUSED to https://rpc.example.org/v3/KEY`))).toBe(
      'connect ECONNREFUSED to https://rpc.example.org/[redacted]',
    );
  });
});
