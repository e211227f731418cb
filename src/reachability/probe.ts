import { request as httpRequest } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';

/**
 * GET <url>/healthz over a stream opened elsewhere (a channel the relay opened from its side): the
 * request travels the way a tenant's would. Over https the handshake is done but the certificate is
 * not judged here: this proves the path, and tenants pin the certificate themselves.
 * Resolves with the HTTP status.
 */
export function healthzOver(stream: Duplex, url: URL, signal: AbortSignal): Promise<number> {
  const socket = url.protocol === 'https:' ? tlsConnect({ socket: stream, servername: isName(url.hostname) ? url.hostname : undefined, rejectUnauthorized: false }) : stream;
  return new Promise<number>((resolve, reject) => {
    const req = httpRequest(
      { createConnection: () => socket as never, method: 'GET', path: `${url.pathname.replace(/\/$/, '')}/healthz`, headers: { host: url.host, connection: 'close' }, signal },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end();
  }).finally(() => {
    socket.destroy();
    stream.destroy();
  });
}

function isName(host: string): boolean {
  return !/^[\d.]+$/.test(host) && !host.includes(':') && !host.startsWith('[');
}
