import { localApiUrl, localUrl, publicApiUrl } from '../../../src/api';

describe('how this machine reaches its own API', () => {
  it('uses loopback for an API listening on every address, and the bound address otherwise', () => {
    expect(localUrl('0.0.0.0', 8420)).toBe('http://127.0.0.1:8420');
    expect(localUrl('::', 8420)).toBe('http://127.0.0.1:8420');
    expect(localUrl('10.0.0.5', 9000)).toBe('http://10.0.0.5:9000');
    expect(localUrl('::1', 9000)).toBe('http://[::1]:9000');
    // Operator commands use the plain loopback listener: api.operatorPort, default the next port.
    expect(localApiUrl({ api: { host: '0.0.0.0', port: 8421 } } as never)).toBe('http://127.0.0.1:8422');
    expect(localApiUrl({ api: { host: '10.0.0.5', port: 8421, operatorPort: 9001 } } as never)).toBe('http://127.0.0.1:9001');
    expect(publicApiUrl({ api: { host: '0.0.0.0', port: 8421, tls: { enabled: true } } } as never)).toBe('https://127.0.0.1:8421');
    expect(publicApiUrl({ api: { host: '::1', port: 8421, tls: { enabled: false } } } as never)).toBe('http://[::1]:8421');
  });
});
