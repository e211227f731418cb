import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { OperatorAccess } from '../api';
import { ProviderError } from '../errors';

export interface DashboardAccessSettings {
  /** With a password, peers on the network may read the operator views (GET only) by giving it. */
  password?: string | undefined;
}

/**
 * Who may use the operator routes the dashboard reads. This machine always; another machine only
 * when the operator set dashboard.password, only to read, and only with that password (HTTP basic
 * auth: the browser asks once and sends it on every request of the page).
 *
 * A request from this machine must name it by address or as localhost: a page on another site
 * whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
 */
export class DashboardAccess implements OperatorAccess {
  private readonly digest: Buffer | undefined;

  constructor(settings: DashboardAccessSettings) {
    this.digest = settings.password === undefined ? undefined : sha256(settings.password);
  }

  admit(req: IncomingMessage, method: string, local: boolean): boolean {
    if (local) {
      if (!namesThisMachine(req.headers.host)) {
        throw new ProviderError('OPERATOR_ONLY', `operator routes answer only to requests for an address or localhost, not for "${String(req.headers.host).slice(0, 100)}"`, {
          fix: 'open http://127.0.0.1:<api.operatorPort>/dashboard (a name resolving here is how another site reaches this machine through your browser)',
        });
      }
      return true;
    }
    if (!this.digest) return false;
    // The password opens the views; moving money (withdraw) stays with this machine.
    if (method !== 'GET') return false;
    const given = basicPassword(req.headers.authorization);
    // Digests have one length whatever was given: the comparison takes the same time for any guess.
    if (given === undefined || !timingSafeEqual(sha256(given), this.digest)) {
      throw new ProviderError('OPERATOR_AUTH_REQUIRED', 'the dashboard asks for its password from another machine', {
        fix: 'give the password set in dashboard.password (any user name), or reach it through an SSH tunnel: ssh -L 8421:127.0.0.1:8421 <host>, then http://127.0.0.1:8421/dashboard',
      });
    }
    return true;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The password of an `Authorization: Basic` header, or undefined. */
export function basicPassword(header: string | undefined): string | undefined {
  const match = /^Basic +([A-Za-z0-9+/=]{1,1024})$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/** True for a Host header that is an IP address or localhost (with or without a port); true when absent (HTTP/1.0, curl --http1.0). */
export function namesThisMachine(host: string | undefined): boolean {
  if (host === undefined) return true;
  const bracketed = /^\[([^\]]+)\](?::\d{1,5})?$/.exec(host);
  if (bracketed) return isIP(bracketed[1]!) === 6;
  const name = host.replace(/:\d{1,5}$/, '').toLowerCase();
  return name === 'localhost' || name.endsWith('.localhost') || isIP(name) === 4;
}
