import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger } from '../../../src/log';
import { SshRelayTunnel, fingerprint, type RelaySettings } from '../../../src/reachability';
import { systemClock } from '../../../src/util/clock';
import { deadPort } from '../../support/cli-io';
import { missingTool } from '../../support/host-tools';
import { knownHostKey, makeSshKeys, startSshd } from '../../support/sshd';
import { until } from '../../support/until';

jest.setTimeout(90_000);

/**
 * The relay tunnel against a stock OpenSSH server on loopback (GatewayPorts no: the forwarded port
 * listens on 127.0.0.1 only). What the home-network e2e cannot show in its time: the session
 * dropping under a running daemon, sshd going away and coming back, and the pin refusing an
 * impostor.
 */
const missing = process.getuid?.() !== 0 ? 'not root (sshd logs in as root here)' : missingTool(['/usr/sbin/sshd', 'ssh-keygen']);
// CI installs openssh-server (.ci/run): there a missing tool is a failure, not a skip.
if (missing && process.env.CI) throw new Error(`relay tunnel test cannot run in CI: ${missing}`);
const describeRelay = missing ? describe.skip : describe;
if (missing) console.warn(`relay tunnel test skipped: ${missing}`);

const work = mkdtempSync(join(tmpdir(), 'pvr-relay-'));
let sshd: ChildProcess | undefined;
let sshPort = 0;
let remotePort = 0;
const tunnels: SshRelayTunnel[] = [];

/** The relay's sshd on loopback, showing host key `hostKey`. */
function startRelay(hostKey = 'host_key'): Promise<ChildProcess> {
  return startSshd({ dir: work, listen: '127.0.0.1', port: sshPort, gatewayPorts: 'no', hostKey });
}

/** The per-connection sshd processes under the listener (by /proc): killing them drops the sessions. */
function sessionPids(listener: ChildProcess): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces, so read after its closing parenthesis.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === listener.pid) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

async function stopSshd(listener: ChildProcess): Promise<void> {
  const sessions = sessionPids(listener);
  if (listener.exitCode === null && listener.signalCode === null) {
    const exited = new Promise((resolve) => listener.once('exit', resolve));
    listener.kill('SIGKILL');
    await exited;
  }
  for (const pid of sessions) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone with its session
    }
  }
}

/** One round trip through the relay's forwarded port: what a tenant's connection does. */
async function echoThroughRelay(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(remotePort, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer through the relay in 5 s'));
    }, 5_000);
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.length >= text.length) {
        clearTimeout(timer);
        socket.end();
        resolve(answer);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(text);
  });
}

/** A tunnel whose accepted connections echo, with its log lines kept for the test to read. */
function aTunnel(overrides: Partial<RelaySettings> = {}): { tunnel: SshRelayTunnel; logged: () => string[] } {
  const destination = new PassThrough();
  const lines: string[] = [];
  destination.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n').filter(Boolean)));
  const tunnel = new SshRelayTunnel(
    {
      host: '127.0.0.1', port: sshPort, user: 'root', keyFile: join(work, 'client_key'),
      knownHostKey: knownHostKey(work), remotePort,
      connectTimeoutMs: 5_000, maxReconnectDelayMs: 2_000, ...overrides,
    },
    { accept: (stream) => stream.pipe(stream), clock: systemClock, log: createLogger({ level: 'info', format: 'json', destination }) },
  );
  tunnels.push(tunnel);
  return { tunnel, logged: () => lines.map((l) => (JSON.parse(l) as { msg: string }).msg) };
}

beforeAll(async () => {
  if (missing) return;
  await makeSshKeys(work, ['host_key', 'other_host_key']);
  sshPort = await deadPort();
  remotePort = await deadPort();
  sshd = await startRelay();
}, 60_000);

afterEach(async () => {
  for (const tunnel of tunnels.splice(0)) await tunnel.close();
});

afterAll(async () => {
  if (sshd) await stopSshd(sshd);
  rmSync(work, { recursive: true, force: true });
});

describeRelay('the SSH relay tunnel against a real sshd', () => {
  it('carries a connection end to end, comes back after the relay drops the session, and after sshd is gone for a while', async () => {
    const { tunnel, logged } = aTunnel();
    await tunnel.open({ forward: true });
    expect(tunnel.connected).toBe(true);
    expect(await echoThroughRelay('first')).toBe('first');

    // The relay drops the session (its per-connection process dies): the tunnel reconnects by itself.
    const sessions = sessionPids(sshd!);
    expect(sessions.length).toBeGreaterThan(0);
    for (const pid of sessions) process.kill(pid, 'SIGKILL');
    await until('the drop is seen', () => logged().includes('the relay tunnel dropped; reconnecting'), 15_000, 50);
    expect(await until('a tenant gets through again', () => echoThroughRelay('after the drop').catch(() => undefined), 20_000, 200)).toBe('after the drop');
    expect(tunnel.connected).toBe(true);

    // sshd goes away altogether: tries fail (and say so) until it is back, then the tunnel is.
    await stopSshd(sshd!);
    sshd = undefined;
    await until('a failed reconnection', () => logged().includes('relay reconnection failed'), 20_000, 100);
    expect(tunnel.connected).toBe(false);
    await expect(echoThroughRelay('nobody')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    sshd = await startRelay();
    expect(await until('a tenant gets through after sshd is back', () => echoThroughRelay('after the restart').catch(() => undefined), 20_000, 200)).toBe('after the restart');
    expect(tunnel.connected).toBe(true);
    expect(logged().filter((m) => m === 'relay tunnel open').length).toBeGreaterThanOrEqual(3);
  });

  it('stops for good when closed: the relay no longer listens and nothing reconnects', async () => {
    const { tunnel, logged } = aTunnel();
    await tunnel.open({ forward: true });
    expect(await echoThroughRelay('open')).toBe('open');
    await tunnel.close();
    expect(tunnel.connected).toBe(false);
    await until('the relay stops listening', () => echoThroughRelay('closed').then(() => false, (err: { code?: string }) => err.code === 'ECONNREFUSED'), 10_000, 100);
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // longer than the first reconnection delay
    expect(logged()).not.toContain('the relay tunnel dropped; reconnecting');
    await until('the relay ends the session', () => sessionPids(sshd!).length === 0, 10_000, 100);
  });

  it('refuses a relay that shows another host key, naming the key it saw', async () => {
    const impostorKey = knownHostKey(work, 'other_host_key');
    const seen = fingerprint(Buffer.from(impostorKey.split(/\s+/)[1]!, 'base64'));
    await stopSshd(sshd!);
    sshd = await startRelay('other_host_key');
    const { tunnel } = aTunnel();
    await expect(tunnel.open({ forward: true })).rejects.toMatchObject({
      code: 'RELAY_HOST_KEY_MISMATCH',
      message: expect.stringContaining(seen),
      input: 'reachability.relay.knownHostKey',
    });
    expect(tunnel.connected).toBe(false);
    await expect(echoThroughRelay('never')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('says why when the relay will not forward the port (another session holds it)', async () => {
    await stopSshd(sshd!);
    sshd = await startRelay();
    const first = aTunnel();
    await first.tunnel.open({ forward: true });
    const second = aTunnel();
    await expect(second.tunnel.open({ forward: true })).rejects.toMatchObject({
      code: 'RELAY_FAILED',
      message: expect.stringContaining(`the relay refused to listen on port ${remotePort}`),
    });
    expect(await echoThroughRelay('still the first')).toBe('still the first');
  });
});
