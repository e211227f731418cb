import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { UpgradeHandler } from './server';

/**
 * Hands each upgrade request on the API's port to the handler of its path (the log stream, a
 * shell, a tunnel, a proxied websocket); the fallback takes the rest, and refuses what it does not serve.
 */
export class UpgradeRouter implements UpgradeHandler {
  constructor(
    private readonly routes: readonly { pattern: RegExp; handler: UpgradeHandler }[],
    private readonly fallback: UpgradeHandler,
  ) {}

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const route = this.routes.find((r) => r.pattern.test(path));
    (route?.handler ?? this.fallback).handleUpgrade(req, socket, head);
  }

  async close(): Promise<void> {
    const handlers = new Set([...this.routes.map((r) => r.handler), this.fallback]);
    await Promise.all([...handlers].map((h) => h.close()));
  }
}
