import { duplexPair } from 'node:stream';
import { ApiServer } from '../../../src/api';
import { silentLogger } from '../../../src/log';

/** One raw HTTP/1.1 request over `socket`; the status line's code. */
function get(server: ApiServer, path: string): Promise<number> {
  const [ours, theirs] = duplexPair();
  server.accept(theirs);
  return new Promise((resolve, reject) => {
    let text = '';
    ours.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) {
        ours.destroy();
        resolve(Number(m[1]));
      }
    });
    ours.once('error', reject);
    ours.write(`GET ${path} HTTP/1.1\r\nHost: relay.example.org:9000\r\nConnection: close\r\n\r\n`);
  });
}

describe('a connection handed to the API by the relay tunnel', () => {
  const server = new ApiServer({
    routes: [
      { method: 'GET', path: '/healthz', auth: 'none', handler: () => ({ json: { status: 'ok' } }) },
      { method: 'GET', path: '/v1/status', auth: 'operator', handler: () => ({ json: { withdrawable: 'all of it' } }) },
    ],
    authenticator: undefined,
    maxBodyBytes: 1024,
    log: silentLogger(),
    // The tunnel's bytes come from sshd through this process: were the peer judged by the socket
    // the tunnel opened locally, it would look like loopback. There is no such socket.
    ownAddresses: () => ({ lo: [{ address: '127.0.0.1' }] }),
  });
  afterAll(() => server.close());

  it('is served like one on the port', async () => {
    expect(await get(server, '/healthz')).toBe(200);
  });

  it('never passes for the operator: operator routes refuse it', async () => {
    expect(await get(server, '/v1/status')).toBe(403);
  });
});
