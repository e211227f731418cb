import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { Contract, Wallet, type BaseWallet, type InterfaceAbi } from 'ethers';
import { mockTokenAbi } from '../../src/chain/artifacts/mock-token';
import { devPrivateKey, freePort } from '../../src/devnet';
import { ProviderRefusedError, signRequest, type TenantClient } from '../../src/tenant';
import { DaemonProcess, until } from './daemon-process';

jest.setTimeout(240_000);

const sh = promisify(execFile);
const docker = new Docker();
const TOKEN = 10n ** 18n;
const IMAGE = 'provider-test/busybox:latest';
/** Quotes one address may ask at once; the funded tenants here, all on 127.0.0.1, ask about 20. */
const ADDRESS_BURST = 30;
const manifest = (cpuMillis: number, image = IMAGE, command: string[] = ['sleep', '30']) => ({
  image,
  command,
  resources: { cpuMillis, memoryBytes: 16 * 2 ** 20 },
  maxDurationSeconds: 60,
});

/**
 * Quotes hold capacity for free until they lapse; these are the attacks measured on a devnet
 * daemon (a key with no tokens emptied the machine with ten quotes) and what now stops them. The
 * funded tenants quote from 127.0.0.1 through the tenant client; the attackers send signed
 * requests from other loopback addresses (127.0.0.2...), which the daemon sees as other hosts.
 */
let daemon: DaemonProcess;
/** Repositories this file pushed and pulled: every local image of theirs is removed at the end. */
const pushedImages: string[] = [];
const clients: { rpc: { destroy(): void } }[] = [];

beforeAll(async () => {
  daemon = await DaemonProcess.create('quotes', {
    admission: {
      maxQuoteShare: 0.5,
      fundingCacheSeconds: 1,
      imageResolveTimeoutSeconds: 3,
      rateLimit: { perTenant: { perMinute: 2, burst: 5 }, perAddress: { perMinute: 1, burst: ADDRESS_BURST } },
    },
  });
  await daemon.start();
});

afterAll(async () => {
  for (const c of clients) c.rpc.destroy();
  const code = await daemon.stop();
  await daemon.cleanup();
  for (const repository of pushedImages) {
    const images = await docker.listImages({ filters: { reference: [repository] } });
    for (const img of images) await docker.getImage(img.Id).remove({ force: true }).catch(() => undefined);
  }
  expect(code).toBe(0);
});

/** A dev account (it has ether) with tokens minted to it: approvals are the tenant client's to make. */
async function fundedTenant(index: number): Promise<TenantClient> {
  const tenant = daemon.tenant(devPrivateKey(index));
  clients.push(tenant);
  const token = new Contract(daemon.ready!.token, mockTokenAbi as unknown as InterfaceAbi, tenant.wallet);
  await (await token.getFunction('mint')(tenant.wallet.address, 1_000n * TOKEN, { gasLimit: 200_000n })).wait();
  return tenant.client;
}

interface Reply {
  status: number;
  code: string | undefined;
  retryAfter: string | undefined;
}

/** POST /v1/quotes signed by `key`, sent from `localAddress` (a loopback address of its own). */
async function quoteFrom(localAddress: string, key: BaseWallet, body: object): Promise<Reply> {
  const url = new URL(daemon.ready!.apiUrl);
  const text = JSON.stringify(body);
  const headers = { 'content-type': 'application/json', ...(await signRequest(key, daemon.ready!.chainId, 'POST', '/v1/quotes', text)) };
  return new Promise((resolve, reject) => {
    // Checking no certificate: what is tested is how the server counts addresses.
    const req = request({ host: url.hostname, port: Number(url.port), localAddress, method: 'POST', path: '/v1/quotes', headers, timeout: 30_000, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { error?: { code?: string } };
        const retryAfter = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, code: parsed.error?.code, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('no reply in 30 s')));
    req.end(text);
  });
}

async function freeCpu(client: TenantClient): Promise<number> {
  return (await client.offer()).free.cpuMillis;
}

async function refusalOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ProviderRefusedError) return err.remoteCode;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('quotes cost something to hold', () => {
  it('refuses a flood of quotes from keys with no tokens (TENANT_UNFUNDED, with the fix); a funded tenant is served during and after, and nothing is held', async () => {
    const funded = await fundedTenant(3);
    const before = await freeCpu(funded);
    const strangers = Array.from({ length: 10 }, () => Wallet.createRandom());
    const [flood, during] = await Promise.all([
      Promise.all(strangers.map((key) => quoteFrom('127.0.0.2', key, manifest(100)))),
      funded.quote(manifest(100)),
    ]);
    expect(flood.map((r) => `${r.status} ${r.code}`)).toEqual(Array(10).fill('402 TENANT_UNFUNDED'));
    expect(during.allocation.cpuMillis).toBe(100);
    // Only the funded tenant's quote holds anything.
    expect(await freeCpu(funded)).toBe(before - 100);
    const after = await funded.quote(manifest(100, IMAGE, ['sleep', '31']));
    expect(after.allocation.cpuMillis).toBe(100);
  });

  it('says what is short and how to fix it: tokens without an allowance are refused until the marketplace is approved', async () => {
    const key = new Wallet(devPrivateKey(8), daemon.tenant().rpc);
    const token = new Contract(daemon.ready!.token, mockTokenAbi as unknown as InterfaceAbi, key);
    await (await token.getFunction('mint')(key.address, 10n * TOKEN, { gasLimit: 200_000n })).wait();
    const text = JSON.stringify(manifest(10));
    const ask = async (): Promise<Response> =>
      daemon.fetch('/v1/quotes', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await signRequest(key, daemon.ready!.chainId, 'POST', '/v1/quotes', text)) },
        body: text,
      });
    const res = await ask();
    const body = (await res.json()) as { error: { code: string; message: string; fix: string } };
    expect(res.status).toBe(402);
    expect(body.error.code).toBe('TENANT_UNFUNDED');
    expect(body.error.message).toMatch(/allowance to the marketplace is 0/);
    expect(body.error.fix).toContain(`approve the marketplace ${daemon.ready!.marketplace}`);
    await (await token.getFunction('approve')(daemon.ready!.marketplace, TOKEN, { gasLimit: 200_000n })).wait();
    // Served once the cached read (admission.fundingCacheSeconds: 1) has lapsed.
    await until('the approved tenant is quoted', async () => ((await ask()).status === 201 ? true : undefined), 30_000, 500);
    (key.provider as { destroy(): void }).destroy();
  });

  it('releases the old hold at once when the same tenant asks again for the same manifest', async () => {
    const tenant = await fundedTenant(6);
    const before = await freeCpu(tenant);
    await tenant.quote(manifest(100, IMAGE, ['sleep', '7']));
    expect(await freeCpu(tenant)).toBe(before - 100);
    await tenant.quote(manifest(100, IMAGE, ['sleep', '7']));
    await tenant.quote(manifest(100, IMAGE, ['sleep', '7']));
    expect(await freeCpu(tenant)).toBe(before - 100);
  });

  it('rate-limits quote requests per tenant key (429 RATE_LIMITED with Retry-After)', async () => {
    const key = Wallet.createRandom();
    const replies: Reply[] = [];
    for (let i = 0; i < 7; i += 1) replies.push(await quoteFrom('127.0.0.5', key, manifest(100)));
    expect(replies.map((r) => r.code)).toEqual([...Array(5).fill('TENANT_UNFUNDED'), 'RATE_LIMITED', 'RATE_LIMITED']);
    expect(replies[5]!.status).toBe(429);
    // Two a minute: the next token is at most 30 s away.
    expect(Number(replies[5]!.retryAfter)).toBeGreaterThan(0);
    expect(Number(replies[5]!.retryAfter)).toBeLessThanOrEqual(30);
  });

  it('rate-limits quote requests per source address, whatever keys it signs with', async () => {
    const replies: Reply[] = [];
    for (let i = 0; i < ADDRESS_BURST + 2; i += 1) replies.push(await quoteFrom('127.0.0.4', Wallet.createRandom(), manifest(100)));
    expect(replies.slice(0, ADDRESS_BURST).every((r) => r.code === 'TENANT_UNFUNDED')).toBe(true);
    expect(replies.slice(ADDRESS_BURST).map((r) => `${r.status} ${r.code}`)).toEqual(['429 RATE_LIMITED', '429 RATE_LIMITED']);
    expect(replies[ADDRESS_BURST]!.retryAfter).toBeDefined();
    // Another host is not held back by it.
    expect((await quoteFrom('127.0.0.6', Wallet.createRandom(), manifest(100))).code).toBe('TENANT_UNFUNDED');
  });
  // Last of these: it holds about half of what is free until its quotes lapse.
  it('holds a tenant to its share of free capacity in open quotes; another tenant is still served', async () => {
    const greedy = await fundedTenant(4);
    const free = await freeCpu(greedy);
    const third = Math.floor(free / 3);
    // The first open quote may take much; a second may not bring the tenant past half.
    await greedy.quote(manifest(third, IMAGE, ['sleep', '1']));
    expect(await refusalOf(greedy.quote(manifest(third, IMAGE, ['sleep', '2'])))).toBe('QUOTE_SHARE_EXCEEDED');
    const eighth = Math.floor(free / 8);
    await greedy.quote(manifest(eighth, IMAGE, ['sleep', '3']));
    expect(await freeCpu(greedy)).toBe(free - third - eighth);
    const other = await fundedTenant(5);
    expect((await other.quote(manifest(100))).allocation.cpuMillis).toBe(100);
  });
});

describe('images are resolved before a quote is signed', () => {
  let registry: ChildProcess | undefined;
  let dir: string;
  let address: string;
  let silent: Server;
  const sockets = new Set<Socket>();
  let tenant: TenantClient;

  beforeAll(async () => {
    tenant = await fundedTenant(7);
    dir = await mkdtemp(join(tmpdir(), 'provider-quote-registry-'));
    address = `127.0.0.1:${await freePort('127.0.0.1')}`;
    await writeFile(
      join(dir, 'config.yml'),
      ['version: 0.1', 'log: { level: error }', `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} } }`, `http: { addr: "${address}" }`, ''].join('\n'),
    );
    registry = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
    await until('the registry to answer', async () => ((await fetch(`http://${address}/v2/`).catch(() => undefined))?.status === 200 ? true : undefined), 30_000);
    // A "registry" that takes the connection and never answers.
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
    registry?.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });

  it('names the local image it will run: an image built on this host, by its id', async () => {
    const id = (await docker.getImage(IMAGE).inspect()).Id;
    const quote = await tenant.quote(manifest(10, IMAGE, ['true']));
    expect(quote.image).toEqual({ reference: IMAGE, digest: id, source: 'local' });
  });

  it('names the registry digest it will run, and the lease runs exactly that digest', async () => {
    // An image of its own (never a tag on the shared test image: a pushed image gains RepoDigests,
    // and the provider then pulls it again from its registry for every other test's lease).
    const image = `${address}/provider-test/quoted:${process.pid}`;
    await sh('sh', ['-c', `printf 'FROM ${IMAGE}\\nLABEL quoted=1\\n' | docker build -q -t ${image} -`]);
    pushedImages.push(`${address}/provider-test/quoted`);
    const stream = await docker.getImage(image).push({ authconfig: { serveraddress: address } } as object);
    const pushed = await new Promise<string>((resolve, reject) =>
      docker.modem.followProgress(stream, (err: Error | null, out: { error?: string; aux?: { Digest?: string } }[]) => {
        const failed = out?.find((o) => o.error);
        const digest = out?.find((o) => o.aux?.Digest)?.aux?.Digest;
        if (err || failed || !digest) reject(err ?? new Error(failed?.error ?? 'no digest'));
        else resolve(digest);
      }),
    );
    await docker.getImage(image).remove({ force: true });
    const quote = await tenant.quote(manifest(10, image, ['sleep', '20']));
    expect(quote.image).toEqual({ reference: image, digest: `${address}/provider-test/quoted@${pushed}`, source: 'registry' });

    // The tag moves to another image: the lease still runs the quoted digest.
    await sh('sh', ['-c', `printf 'FROM ${IMAGE}\\nLABEL moved=1\\n' | docker build -q -t ${image} - && docker push -q ${image} >/dev/null && docker rmi ${image} >/dev/null`]);
    const { leaseId } = await tenant.open(quote, TOKEN);
    const running = await until('the lease runs', async () => ((await tenant.lease(leaseId)).state === 'running' ? true : undefined), 60_000);
    expect(running).toBe(true);
    const containers = await docker.listContainers({ all: true, filters: { name: [`-${leaseId}`] } });
    expect(containers).toHaveLength(1);
    const ran = await docker.getImage(containers[0]!.ImageID).inspect();
    expect(ran.RepoDigests).toContain(`${address}/provider-test/quoted@${pushed}`);
  });

  it('refuses an image its registry does not have (IMAGE_NOT_FOUND), before anything is held', async () => {
    const before = await freeCpu(tenant);
    expect(await refusalOf(tenant.quote(manifest(10, `${address}/provider-test/missing:1`)))).toBe('IMAGE_NOT_FOUND');
    expect(await freeCpu(tenant)).toBe(before);
  });

  it('refuses an image whose registry cannot be reached (IMAGE_UNRESOLVABLE)', async () => {
    const closed = await freePort('127.0.0.1');
    expect(await refusalOf(tenant.quote(manifest(10, `127.0.0.1:${closed}/nothing/here:1`)))).toBe('IMAGE_UNRESOLVABLE');
  });

  it('refuses with REGISTRY_TIMEOUT when the registry does not answer in time, never hangs', async () => {
    const port = (silent.address() as { port: number }).port;
    expect(await refusalOf(tenant.quote(manifest(10, `127.0.0.1:${port}/slow/image:1`)))).toBe('REGISTRY_TIMEOUT');
  });
});
