import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { marketplaceAt } from '../../src/chain';
import { pinFromMetadata } from '../../src/tenant';
import { daemonForTests, until, type DaemonProcess, type DevTenant } from './daemon-process';

jest.setTimeout(150_000);

/** SHA-256 of the DER inside a PEM certificate: the pin, computed here without the daemon's code. */
function pemSha256(pem: string): string {
  const base64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return createHash('sha256').update(Buffer.from(base64, 'base64')).digest('hex');
}

describe('TLS on the provider API, pinned on-chain (a real daemon process on the devnet)', () => {
  let daemon: DaemonProcess;
  let tenant: DevTenant;
  daemonForTests('tls', (d, t) => {
    daemon = d;
    tenant = t;
  });

  it('registers the SHA-256 of the certificate it serves in its on-chain metadata, at an https URL', async () => {
    const ready = daemon.ready!;
    const onDisk = pemSha256(readFileSync(join(daemon.dataDir, 'tls', 'cert.pem'), 'utf8'));
    const registered = (await marketplaceAt(ready.marketplace, tenant.rpc).read('getProvider', [ready.provider])) as unknown as { apiUrl: string; metadata: string };
    expect(registered.apiUrl).toBe(ready.apiUrl);
    expect(registered.apiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(pinFromMetadata(registered.metadata)).toBe(onDisk);
    expect(ready.tlsSha256).toBe(onDisk);
  });

  it('doctor finds the certificate and the on-chain pin matching it', async () => {
    const run = await daemon.cli(['doctor', '--json']);
    const checks = (JSON.parse(run.stdout) as { checks: { id: string; status: string; detail: string }[] }).checks;
    const byId = Object.fromEntries(checks.map((c) => [c.id, c]));
    expect(byId['tls-cert']).toMatchObject({ status: 'pass', detail: expect.stringContaining('self-signed certificate') });
    expect(byId['tls-pin']).toMatchObject({ status: 'pass', detail: `the on-chain registration of ${daemon.ready!.provider} pins this certificate` });
    expect(byId['api-port']).toMatchObject({ status: 'pass' });
  });

  it('a capture of the API port holds the TLS handshake but never a manifest\'s env value or registry password', async () => {
    const port = Number(new URL(daemon.ready!.apiUrl).port);
    const envSecret = `env-secret-${randomBytes(12).toString('hex')}`;
    const registryPassword = `registry-password-${randomBytes(12).toString('hex')}`;
    const clearMarker = `clear-marker-${randomBytes(12).toString('hex')}`;
    const file = join(daemon.dataDir, 'api.pcap');
    const capture = await startCapture(file, port);
    try {
      // A whole lease whose manifest carries the env value: quote, open, logs, usage.
      const quote = await tenant.client.quote({
        image: 'provider-test/busybox:latest',
        command: ['sh', '-c', 'echo started; sleep 3'],
        env: { API_TOKEN: envSecret },
        resources: { cpuMillis: 200, memoryBytes: 32 * 2 ** 20 },
        maxDurationSeconds: 60,
      });
      const { leaseId } = await tenant.client.open(quote, 10n ** 18n);
      await until('the lease runs', async () => ((await tenant.client.lease(leaseId)).state === 'running' ? true : undefined), 30_000);
      const lines: string[] = [];
      for await (const entry of tenant.client.logs(leaseId, { tail: 10 })) lines.push(entry.line);
      await tenant.client.usage(leaseId);
      // Registry credentials in a manifest: sent in the quote request whatever the provider answers
      // (here no registry is reachable, so the quote is refused after the request crossed the wire).
      await tenant.client
        .quote({ image: 'registry.invalid/private/app:1', registryAuth: { username: 'tenant', password: registryPassword }, resources: { cpuMillis: 100, memoryBytes: 32 * 2 ** 20 }, maxDurationSeconds: 60 })
        .catch(() => undefined);
      await tenant.client.close(leaseId);
      // Control: plain bytes sent to the same port are in the capture, so it does see payloads.
      // Sent last: once they are in the file, everything before them is too.
      await sendClear(port, `GET /${clearMarker} HTTP/1.1\r\nhost: x\r\n\r\n`);
      await until('the capture holds the clear marker', () => readFileSync(file).includes(Buffer.from(clearMarker)), 15_000);
    } finally {
      await capture.stop();
    }
    const bytes = readFileSync(file);
    expect(bytes.includes(Buffer.from(clearMarker))).toBe(true);
    // TLS records: a handshake (0x16) and application data (0x17), version 3.x.
    expect(bytes.includes(Buffer.from([0x16, 0x03, 0x01]))).toBe(true);
    expect(bytes.includes(Buffer.from([0x17, 0x03, 0x03]))).toBe(true);
    expect(bytes.includes(Buffer.from(envSecret))).toBe(false);
    expect(bytes.includes(Buffer.from(registryPassword))).toBe(false);
    expect(bytes.includes(Buffer.from('API_TOKEN'))).toBe(false);
  });
});

/** tcpdump on loopback, writing every packet to or from `port` into `file` as it comes. */
async function startCapture(file: string, port: number): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn('tcpdump', ['-i', 'lo', '--immediate-mode', '-U', '-s', '0', '-Z', 'root', '-w', file, 'tcp', 'port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await until('tcpdump listens', async () => (stderr.includes('listening on') ? true : child.exitCode !== null ? Promise.reject(new Error(`tcpdump: ${stderr}`)) : undefined), 15_000);
  return {
    stop: async () => {
      child.kill('SIGINT');
      await exited;
    },
  };
}

function sendClear(port: number, text: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    setTimeout(() => socket.destroy(), 2_000).unref();
  });
}
