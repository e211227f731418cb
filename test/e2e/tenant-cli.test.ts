import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ZERO_BYTES32 } from '../../src/chain';
import { devPrivateKey } from '../../src/devnet';
import { LogDigest, resultDigest } from '../../src/settlement';
import { DaemonProcess, until, type CliResult } from './daemon-process';

const sh = promisify(execFile);
jest.setTimeout(180_000);

/**
 * The tenant's path on the devnet, through the CLI only: `provider start` as a process, then
 * `provider tenant ...` as a second process each time, as a person in another terminal runs it.
 */
let daemon: DaemonProcess;

beforeAll(async () => {
  daemon = await DaemonProcess.create('tenant-cli');
  await daemon.start();
});

afterAll(async () => {
  await daemon?.cleanup();
});

function ok(run: CliResult): CliResult {
  if (run.code !== 0) throw new Error(`exit ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run;
}

async function json<T = Record<string, unknown>>(args: readonly string[]): Promise<T> {
  return JSON.parse(ok(await daemon.cli(['tenant', ...args, '--json'])).stdout) as T;
}

interface StatusJson {
  lease: { state: string; endReason: string | null; container: { exitCode: number | null } | null; lastCheckpoint: { seq: number; status: string; checkpoint: { resultDigest: string } } | null };
}

function jsonLines(text: string): { stream: 'stdout' | 'stderr'; time: string; line: string }[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { stream: 'stdout' | 'stderr'; time: string; line: string });
}

describe('provider tenant on the devnet', () => {
  let leaseId: string;

  it('lists the devnet provider with its live offer', async () => {
    const listed = await json<{ registered: number; providers: { provider: string; offer: { accepting: boolean; free: { cpuMillis: number } } | null; unreachable: unknown }[] }>(['providers']);
    expect(listed.registered).toBe(1);
    expect(listed.providers).toHaveLength(1);
    expect(listed.providers[0]).toMatchObject({ provider: daemon.ready!.provider, unreachable: null, offer: { accepting: true } });
    expect(listed.providers[0]!.offer!.free.cpuMillis).toBeGreaterThan(0);
  });

  it('deploys examples/hello.yaml with the dev tenant, waits until it runs, and prints the lease', async () => {
    const run = ok(await daemon.cli(['tenant', 'deploy', 'examples/hello.yaml', '--json']));
    const deployed = JSON.parse(run.stdout) as { leaseId: string; provider: string; state: string; image: { reference: string } };
    expect(deployed.provider).toBe(daemon.ready!.provider);
    expect(['running', 'stopping', 'finishing', 'settling', 'settled']).toContain(deployed.state);
    expect(run.stderr).toMatch(/quote verified: signed by/);
    expect(run.stderr).toMatch(/running/);
    leaseId = deployed.leaseId;
  });

  it('streams its logs to the end, stderr apart', async () => {
    const run = ok(await daemon.cli(['tenant', 'logs', leaseId, '--follow', '--json']));
    const lines = jsonLines(run.stdout);
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.line)).toEqual(expect.arrayContaining(['greeting: hello, marketplace', 'tick 5', 'done']));
    expect(lines.find((l) => l.stream === 'stderr')?.line).toBe('warnings go to stderr');
  });

  it('refuses the logs to another tenant', async () => {
    const keyFile = join(daemon.dataDir, 'other-tenant.key');
    writeFileSync(keyFile, `${devPrivateKey(3)}\n`, { mode: 0o600 });
    const run = await daemon.cli(['tenant', 'logs', leaseId, '--key-file', keyFile]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/AUTH_FORBIDDEN/);
  });

  it('verifies every record, proof and checkpoint once the final checkpoint is out, and countersigns it', async () => {
    await until('the final checkpoint', async () => {
      const status = await json<StatusJson>(['status', leaseId]);
      return status.lease.lastCheckpoint && status.lease.lastCheckpoint.checkpoint.resultDigest !== ZERO_BYTES32 ? status : undefined;
    }, 60_000, 500);
    const verified = await json<{ verified: boolean; records: number; latestCheckpoint: number }>(['usage', leaseId, '--verify']);
    expect(verified.verified).toBe(true);
    expect(verified.records).toBeGreaterThan(0);
    const signed = await json<{ seq: number; status: string; final: boolean }>(['countersign', leaseId]);
    expect(signed).toMatchObject({ seq: verified.latestCheckpoint, final: true });
    expect(['redeemed', 'final']).toContain(signed.status);
  });

  it('after settlement the container is gone, and its logs are still served and hash to the result digest', async () => {
    const status = await until('the lease settled', async () => {
      const s = await json<StatusJson>(['status', leaseId]);
      return s.lease.state === 'settled' ? s : undefined;
    }, 60_000, 500);
    const names = await sh('docker', ['ps', '-a', '--filter', `name=provider-lease-${daemon.instance()}-${leaseId}`, '--format', '{{.Names}}']);
    expect(names.stdout.trim()).toBe('');
    const lines = jsonLines(ok(await daemon.cli(['tenant', 'logs', leaseId, '--json'])).stdout);
    expect(lines.map((l) => l.line)).toEqual(expect.arrayContaining(['tick 1', 'done', 'warnings go to stderr']));
    const digest = new LogDigest();
    for (const l of lines) digest.add(l.stream, l.line);
    expect(resultDigest(0, digest.digest())).toBe(status.lease.lastCheckpoint!.checkpoint.resultDigest);
    // --tail is served from the archive too.
    const tail = jsonLines(ok(await daemon.cli(['tenant', 'logs', leaseId, '--tail', '2', '--json'])).stdout);
    expect(tail).toEqual(lines.slice(-2));
  });

  it('lists the lease among the tenant\'s leases from the chain', async () => {
    const listed = await json<{ tenant: string; leases: { leaseId: string; settled: boolean; paid: string; refund: string | null }[] }>(['leases']);
    const found = listed.leases.find((l) => l.leaseId === leaseId)!;
    expect(found).toMatchObject({ settled: true });
    // From LeaseSettled: the marketplace clears a settled lease's slot.
    expect(BigInt(found.paid)).toBeGreaterThan(0n);
    expect(found.refund).not.toBeNull();
  });

  describe('a lease that serves (examples/service.yaml)', () => {
    let service: string;

    beforeAll(async () => {
      service = (JSON.parse(ok(await daemon.cli(['tenant', 'deploy', 'examples/service.yaml', '--json'])).stdout) as { leaseId: string }).leaseId;
      // The workload prints this once both servers listen.
      await until('the lease serves', async () => ok(await daemon.cli(['tenant', 'logs', service])).stdout.includes('serving on 8080'), 30_000, 500);
    });

    it('runs a command in a shell inside the lease and hands back its output and exit code', async () => {
      const run = await daemon.cli(['tenant', 'shell', service, '--', 'sh', '-c', 'cat /tmp/www/index.html; exit 3']);
      expect(run.code).toBe(3);
      expect(run.stdout).toMatch(/^hello from lease /);
    });

    it('serves the lease\'s web page through the API port to a token, and to nobody once it is revoked', async () => {
      const minted = await json<{ tokenId: string; token: string; url: string }>(['token', 'mint', service, '--port', '8080', '--ttl', '600']);
      expect(minted.url).toBe(`${daemon.ready!.apiUrl}/v1/leases/${service}/ports/8080/?access_token=${minted.token}`);
      const page = await daemon.fetch(`/v1/leases/${service}/ports/8080/index.html`, { method: 'GET', headers: { authorization: `Bearer ${minted.token}` } });
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/^hello from lease /);
      ok(await daemon.cli(['tenant', 'token', 'revoke', service, minted.tokenId]));
      const refused = await daemon.fetch(`/v1/leases/${service}/ports/8080/index.html`, { method: 'GET', headers: { authorization: `Bearer ${minted.token}` } });
      expect(refused.status).toBe(401);
    });

    it('forwards a local port to the lease\'s TCP echo service', async () => {
      const forward = daemon.spawnCli(['tenant', 'port-forward', service, '9000', '--json']);
      try {
        const { local } = JSON.parse(await forward.firstLine(30_000)) as { local: string };
        const [host, port] = [local.slice(0, local.lastIndexOf(':')), Number(local.slice(local.lastIndexOf(':') + 1))];
        const echoed = await new Promise<string>((resolve, reject) => {
          const socket = connect({ host, port }, () => socket.write('ping through the door\n'));
          let got = '';
          socket.on('data', (chunk: Buffer) => {
            got += chunk.toString('utf8');
            if (got.includes('\n')) {
              socket.end();
              resolve(got);
            }
          });
          socket.on('error', reject);
          socket.setTimeout(15_000, () => reject(new Error(`no echo; got ${JSON.stringify(got)}`)));
        });
        expect(echoed).toBe('ping through the door\n');
      } finally {
        await forward.stop();
      }
    });

    it('opens a shell at once after a daemon restart: the container kept running', async () => {
      const before = (await sh('docker', ['inspect', '-f', '{{.State.StartedAt}}', `provider-lease-${daemon.instance()}-${service}`])).stdout.trim();
      expect(await daemon.stop()).toBe(0);
      await daemon.start();
      const run = await daemon.cli(['tenant', 'shell', service, '--', 'cat', '/tmp/www/index.html']);
      expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: expect.stringMatching(/^hello from lease /), stderr: '' });
      const after = (await sh('docker', ['inspect', '-f', '{{.State.StartedAt}}', `provider-lease-${daemon.instance()}-${service}`])).stdout.trim();
      expect(after).toBe(before);
    });

    it('closes it: the provider stops the container', async () => {
      const closed = await json<{ txHash: string }>(['close', service]);
      expect(closed.txHash).toMatch(/^0x[0-9a-f]{64}$/);
      const status = await until('the closed lease ended', async () => {
        const s = await json<StatusJson>(['status', service]);
        return s.lease.endReason !== null ? s : undefined;
      }, 60_000, 500);
      expect(status.lease.endReason).toBe('tenant-closed');
    });
  });
});
