import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A Docker socket that accepts connections, reads what is sent and never answers: a wedged engine. */
export class SilentEngine {
  readonly connections = new Set<Socket>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'silent-engine-'));
  readonly socketPath = join(this.dir, 'docker.sock');
  private readonly server: Server = createServer((socket) => {
    // Reading the request is what lets it see the client hang up.
    socket.resume();
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
  });

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  async close(): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
