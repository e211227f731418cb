import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Wallet, type BaseWallet } from 'ethers';
import type { ErrorCode } from '../../src/errors';
import { AUTH_HEADERS, HTTP_STATUS } from '../../src/api';
import { signRequest } from '../../src/tenant';

/**
 * About 200 malformed or hostile requests to the provider API, each with the error it must get
 * (DESIGN §5: bad input gets a clear error and changes nothing). Every expectation here follows
 * from the API and the manifest schema alone, never from the engine's state or policy, so the
 * same list runs against the fake service (test/integration/api) and the real daemon (e2e).
 *
 * What a context must provide: a tenant key, one lease of that tenant (`leaseId`), the API's
 * chain id and body limit. A stranger key is made here.
 */

export interface HostileContext {
  tenant: BaseWallet;
  chainId: number;
  /** A lease that exists and belongs to `tenant`. */
  leaseId: string;
  /** A lease id that does not exist. */
  missingLeaseId?: string;
  /** The API's api.maxBodyBytes. */
  maxBodyBytes: number;
}

export interface HostileRequest {
  /** What is hostile about it, for the test's name. */
  name: string;
  method: string;
  path: string;
  body?: string | Buffer;
  headers: Record<string, string>;
  /** Send it this many times; the last reply is the one judged (a replay is the second send). */
  repeat?: number;
  expect: { code: ErrorCode; status: number };
}

export const VALID_MANIFEST = {
  image: 'busybox:1.36',
  command: ['sh', '-c', 'echo hello'],
  resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 },
  maxDurationSeconds: 600,
} as const;

type Json = Record<string, unknown>;

const expectCode = (code: ErrorCode) => ({ code, status: HTTP_STATUS[code] });

/** Manifests the schema must refuse, each named. */
export function hostileManifests(): { name: string; manifest: unknown }[] {
  const m = (patch: Json): Json => ({ ...VALID_MANIFEST, ...patch });
  const res = (patch: Json): Json => m({ resources: { ...VALID_MANIFEST.resources, ...patch } });
  const out: { name: string; manifest: unknown }[] = [];
  const add = (name: string, manifest: unknown): void => {
    out.push({ name, manifest });
  };

  // Privileged asks and host access: none of these keys exist in the schema.
  const hostKeys: [string, unknown][] = [
    ['privileged', true],
    ['volumes', ['/:/host']],
    ['binds', ['/var/run/docker.sock:/var/run/docker.sock']],
    ['mounts', [{ type: 'bind', source: '/', target: '/host' }]],
    ['networkMode', 'host'],
    ['network', 'host'],
    ['pidMode', 'host'],
    ['pid', 'host'],
    ['ipcMode', 'host'],
    ['utsMode', 'host'],
    ['userns', 'host'],
    ['devices', ['/dev/mem']],
    ['deviceRequests', [{ Driver: 'nvidia', Count: -1 }]],
    ['capAdd', ['SYS_ADMIN']],
    ['capabilities', ['NET_ADMIN']],
    ['securityOpt', ['seccomp=unconfined', 'apparmor=unconfined']],
    ['user', 'root'],
    ['groupAdd', ['docker']],
    ['cgroupParent', '/'],
    ['sysctls', { 'kernel.core_pattern': '|/tmp/x' }],
    ['hostConfig', { Privileged: true }],
    ['HostConfig', { Binds: ['/:/host'] }],
    ['runtime', 'runc'],
    ['labels', { 'provider.lease': 'other' }],
    ['extraHosts', ['metadata:169.254.169.254']],
    ['dns', ['127.0.0.1']],
    ['tmpfs', { '/host': '' }],
    ['ulimits', [{ name: 'nofile', soft: 1e9, hard: 1e9 }]],
    ['oomKillDisable', true],
    ['oomScoreAdj', -1000],
    ['pidsLimit', -1],
    ['restartPolicy', { name: 'always' }],
    ['entrypoint', ['/bin/sh']],
    ['workingDir', '/host'],
    ['readonlyRootfs', false],
    ['init', false],
    ['gpusAll', true],
    ['__proto__', { privileged: true }],
    ['constructor', { prototype: { privileged: true } }],
  ];
  for (const [key, value] of hostKeys) {
    // Built from JSON text so `__proto__` is an own key, as it is on the wire.
    add(`asks for ${key}`, JSON.parse(`{${JSON.stringify(key)}:${JSON.stringify(value)},${JSON.stringify(VALID_MANIFEST).slice(1)}`));
  }
  for (const [key, value] of [
    ['privileged', true],
    ['devices', ['/dev/nvidia0']],
    ['cpusetCpus', '0-63'],
    ['memorySwap', -1],
    ['kernelMemory', 0],
    ['blkioWeight', 1000],
  ] as const) {
    add(`asks for resources.${key}`, res({ [key]: value }));
  }
  add('asks for GPUs by host UUID', res({ gpus: { count: 1, uuids: ['GPU-0'] } }));
  add('asks for GPU devices directly', res({ gpus: { count: 1, devices: 'all' } }));
  add('asks for a GPU driver', res({ gpus: { count: 1, driver: 'nvidia' } }));

  // Absurd resources.
  for (const [key, value] of [
    ['cpuMillis', 0],
    ['cpuMillis', -1000],
    ['cpuMillis', 1e12],
    ['cpuMillis', 1.5],
    ['cpuMillis', '1000'],
    ['cpuMillis', null],
    ['cpuMillis', 1e309],
    ['memoryBytes', 1],
    ['memoryBytes', -1],
    ['memoryBytes', 1e20],
    ['memoryBytes', 2 ** 53 + 2],
    ['memoryBytes', '64Mi'],
    ['shmBytes', 10],
    ['shmBytes', 2 ** 40],
    ['diskBytes', 1e20],
    ['diskBytes', 0],
  ] as const) {
    add(`absurd resources.${key} ${String(value)}`, res({ [key]: value }));
  }
  add('shm larger than memory', res({ shmBytes: 128 * 2 ** 20 }));
  for (const count of [-1, 17, 1000, 0.5, '1']) add(`absurd gpus.count ${String(count)}`, res({ gpus: { count } }));
  add('GPU model name too long', res({ gpus: { count: 1, model: 'x'.repeat(500) } }));
  add('GPU model empty', res({ gpus: { count: 1, model: '' } }));
  for (const seconds of [0, -5, 1e12, 1.5, '600', null]) add(`maxDurationSeconds ${String(seconds)}`, m({ maxDurationSeconds: seconds }));

  // Images that must never reach the engine.
  for (const image of [
    '',
    '../etc/passwd',
    '/busybox',
    'BusyBox',
    'busy box',
    'busybox;rm -rf /',
    'busybox && reboot',
    '$(reboot)',
    '`reboot`',
    'busybox\n',
    'busybox\u0000',
    'http://registry.example.com/x',
    'busybox@sha256:abc',
    'busybox:',
    'busybox:tag with space',
    '-busybox',
    'x'.repeat(600),
    'registry.example.com:99999999/x',
  ]) {
    add(`image ${JSON.stringify(image.slice(0, 40))}`, m({ image }));
  }
  for (const image of [42, null, ['busybox'], { name: 'busybox' }]) add(`image ${JSON.stringify(image)}`, m({ image }));

  // Environment.
  add('sets NVIDIA_VISIBLE_DEVICES', m({ env: { NVIDIA_VISIBLE_DEVICES: 'all' } }));
  add('sets NVIDIA_DRIVER_CAPABILITIES', m({ env: { NVIDIA_DRIVER_CAPABILITIES: 'all' } }));
  add('env name starting with a digit', m({ env: { '1X': 'y' } }));
  add('env name with =', m({ env: { 'A=B': 'c' } }));
  add('env name with a space', m({ env: { 'A B': 'c' } }));
  add('env value with NUL', m({ env: { A: 'x\u0000y' } }));
  add('env value not a string', m({ env: { A: 1 } }));
  add('300 env variables', m({ env: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`V${i}`, 'x'])) }));
  add('env value over 32 KiB', m({ env: { A: 'x'.repeat(33 * 1024) } }));
  add('env as an array', m({ env: ['A=B'] }));

  // Command and args.
  add('empty command', m({ command: [] }));
  add('command as a string', m({ command: 'sh -c reboot' }));
  add('command with NUL', m({ command: ['sh\u0000'] }));
  add('command with a number', m({ command: ['sleep', 5] }));
  add('300 command words', m({ command: Array.from({ length: 300 }, () => 'x') }));
  add('args of objects', m({ args: [{}] }));
  add('argument over 4 KiB', m({ args: ['x'.repeat(5000)] }));

  // Ports.
  for (const port of [0, -1, 70000, 1.5, '80']) add(`port ${String(port)}`, m({ ports: [{ containerPort: port }] }));
  add('port protocol sctp', m({ ports: [{ containerPort: 80, protocol: 'sctp' }] }));
  add('port with hostPort', m({ ports: [{ containerPort: 80, hostPort: 22 }] }));
  add('port with hostIp', m({ ports: [{ containerPort: 80, hostIp: '0.0.0.0' }] }));
  add('duplicate ports', m({ ports: [{ containerPort: 80 }, { containerPort: 80, protocol: 'tcp' }] }));
  add('20 ports', m({ ports: Array.from({ length: 20 }, (_, i) => ({ containerPort: 1000 + i })) }));

  // Egress and registry credentials.
  add('egress host', m({ egress: 'host' }));
  add('egress all', m({ egress: 'all' }));
  add('registryAuth with extra key', m({ registryAuth: { username: 'u', password: 'p', identityToken: 'x' } }));
  add('registryAuth with empty username', m({ registryAuth: { username: '', password: 'p' } }));
  add('registryAuth as a string', m({ registryAuth: 'u:p' }));

  // Shape.
  const { image: _i, ...noImage } = VALID_MANIFEST;
  const { resources: _r, ...noResources } = VALID_MANIFEST;
  const { maxDurationSeconds: _d, ...noDuration } = VALID_MANIFEST;
  add('no image', noImage);
  add('no resources', noResources);
  add('no maxDurationSeconds', noDuration);
  add('resources without cpuMillis', m({ resources: { memoryBytes: 64 * 2 ** 20 } }));
  add('manifest is an array', [VALID_MANIFEST]);
  add('manifest is a string', 'busybox');
  add('manifest is a number', 42);
  add('manifest is null', null);
  add('manifest is true', true);
  add('deeply nested arrays', JSON.parse(`${'['.repeat(2000)}${']'.repeat(2000)}`));
  return out;
}

/** The whole list: manifests as quote requests, then bodies, auth, routes and lease access. */
export async function hostileRequests(ctx: HostileContext): Promise<HostileRequest[]> {
  const stranger = Wallet.createRandom();
  const out: HostileRequest[] = [];
  const sign = async (
    signer: BaseWallet,
    method: string,
    path: string,
    body: string | Buffer = '',
    chainId = ctx.chainId,
    options: { expiresAt?: number; nonce?: string } = {},
  ): Promise<Record<string, string>> => ({
    'content-type': 'application/json',
    ...(await signRequest(signer, chainId, method, path, body, options)),
  });
  const quoteWith = async (name: string, body: string | Buffer, code: ErrorCode): Promise<void> => {
    // A body over the API's limit is refused for its size before anything reads it.
    const expected = Buffer.byteLength(body) > ctx.maxBodyBytes ? 'REQUEST_TOO_LARGE' : code;
    out.push({ name, method: 'POST', path: '/v1/quotes', body, headers: await sign(ctx.tenant, 'POST', '/v1/quotes', body), expect: expectCode(expected) });
  };

  for (const { name, manifest } of hostileManifests()) await quoteWith(`manifest: ${name}`, JSON.stringify(manifest), 'MANIFEST_INVALID');

  // Bodies that are not JSON.
  for (const [name, text] of [
    ['truncated JSON', '{"image":'],
    ['a lone brace', '{'],
    ['single quotes', "{'image':'busybox'}"],
    ['trailing garbage', `${JSON.stringify(VALID_MANIFEST)}xyz`],
    ['NaN literal', '{"image":"busybox","maxDurationSeconds":NaN}'],
    ['comments', '// hi\n{}'],
    ['bare word', 'undefined'],
    ['invalid UTF-8', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ['binary zeros', Buffer.alloc(64)],
    ['two JSON documents', '{}{}'],
  ] as const) {
    await quoteWith(`body: ${name}`, text, 'REQUEST_INVALID');
  }
  await quoteWith('body: empty', '', 'MANIFEST_INVALID');

  // Oversize: declared, and streamed without a length (the limit holds either way).
  const big = Buffer.alloc(ctx.maxBodyBytes + 1, 0x20);
  out.push({ name: 'oversize body, declared', method: 'POST', path: '/v1/quotes', body: big, headers: { 'content-type': 'application/json', 'content-length': String(big.length) }, expect: expectCode('REQUEST_TOO_LARGE') });
  out.push({ name: 'oversize body, chunked', method: 'POST', path: '/v1/quotes', body: big, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, expect: expectCode('REQUEST_TOO_LARGE') });
  out.push({ name: 'oversize length announced, small body', method: 'POST', path: '/v1/quotes', body: '{}', headers: { 'content-length': String(ctx.maxBodyBytes * 100) }, expect: expectCode('REQUEST_TOO_LARGE') });
  const signedBig = JSON.stringify({ ...VALID_MANIFEST, env: { A: 'x'.repeat(ctx.maxBodyBytes) } });
  out.push({ name: 'oversize body, signed', method: 'POST', path: '/v1/quotes', body: signedBig, headers: await sign(ctx.tenant, 'POST', '/v1/quotes', signedBig), expect: expectCode('REQUEST_TOO_LARGE') });

  // Authentication.
  const body = JSON.stringify(VALID_MANIFEST);
  const good = await sign(ctx.tenant, 'POST', '/v1/quotes', body);
  for (const header of Object.values(AUTH_HEADERS)) {
    const headers = { ...good };
    delete headers[header];
    out.push({ name: `auth: no ${header}`, method: 'POST', path: '/v1/quotes', body, headers, expect: expectCode('AUTH_MISSING') });
  }
  for (const [name, header, value] of [
    ['address not hex', AUTH_HEADERS.address, 'tenant'],
    ['address too short', AUTH_HEADERS.address, '0x1234'],
    ['expiry not a number', AUTH_HEADERS.expiresAt, 'tomorrow'],
    ['expiry negative', AUTH_HEADERS.expiresAt, '-1'],
    ['expiry absurd', AUTH_HEADERS.expiresAt, '9'.repeat(40)],
    ['nonce too short', AUTH_HEADERS.nonce, '0x01'],
    ['nonce not hex', AUTH_HEADERS.nonce, `0x${'z'.repeat(64)}`],
    ['signature too short', AUTH_HEADERS.signature, '0x1234'],
    ['signature not hex', AUTH_HEADERS.signature, `0x${'g'.repeat(130)}`],
  ] as const) {
    out.push({ name: `auth: ${name}`, method: 'POST', path: '/v1/quotes', body, headers: { ...good, [header]: value }, expect: expectCode('AUTH_MISSING') });
  }
  out.push({ name: 'auth: wrong signer (stranger signs, claims the tenant)', method: 'POST', path: '/v1/quotes', body, headers: { ...(await sign(stranger, 'POST', '/v1/quotes', body)), [AUTH_HEADERS.address]: ctx.tenant.address }, expect: expectCode('AUTH_BAD_SIGNATURE') });
  out.push({ name: 'auth: signed for another chain', method: 'POST', path: '/v1/quotes', body, headers: await sign(ctx.tenant, 'POST', '/v1/quotes', body, ctx.chainId + 1), expect: expectCode('AUTH_BAD_SIGNATURE') });
  out.push({ name: 'auth: signed for another body', method: 'POST', path: '/v1/quotes', body, headers: await sign(ctx.tenant, 'POST', '/v1/quotes', JSON.stringify({ ...VALID_MANIFEST, maxDurationSeconds: 1 })), expect: expectCode('AUTH_BAD_SIGNATURE') });
  out.push({ name: 'auth: signed for another path', method: 'POST', path: '/v1/quotes', body, headers: await sign(ctx.tenant, 'POST', '/v1/quotes?x=1', body), expect: expectCode('AUTH_BAD_SIGNATURE') });
  out.push({ name: 'auth: signed for another method', method: 'POST', path: '/v1/quotes', body, headers: await sign(ctx.tenant, 'PUT', '/v1/quotes', body), expect: expectCode('AUTH_BAD_SIGNATURE') });
  out.push({ name: 'auth: zero signature', method: 'POST', path: '/v1/quotes', body, headers: { ...good, [AUTH_HEADERS.signature]: `0x${'0'.repeat(130)}` }, expect: expectCode('AUTH_BAD_SIGNATURE') });
  out.push({ name: 'auth: signature with a bad v', method: 'POST', path: '/v1/quotes', body, headers: { ...good, [AUTH_HEADERS.signature]: `${(good[AUTH_HEADERS.signature] ?? '').slice(0, -2)}1d` }, expect: expectCode('AUTH_BAD_SIGNATURE') });
  out.push({ name: 'auth: another nonce than signed', method: 'POST', path: '/v1/quotes', body, headers: { ...good, [AUTH_HEADERS.nonce]: `0x${'7'.repeat(64)}` }, expect: expectCode('AUTH_BAD_SIGNATURE') });
  const now = Math.floor(Date.now() / 1000);
  out.push({ name: 'auth: expired', method: 'POST', path: '/v1/quotes', body, headers: await sign(ctx.tenant, 'POST', '/v1/quotes', body, ctx.chainId, { expiresAt: now - 10 }), expect: expectCode('AUTH_EXPIRED') });
  out.push({ name: 'auth: valid for a year', method: 'POST', path: '/v1/quotes', body, headers: await sign(ctx.tenant, 'POST', '/v1/quotes', body, ctx.chainId, { expiresAt: now + 365 * 86_400 }), expect: expectCode('AUTH_EXPIRED') });
  const leasePath = `/v1/leases/${ctx.leaseId}`;
  out.push({ name: 'auth: replayed lease read', method: 'GET', path: leasePath, headers: await sign(ctx.tenant, 'GET', leasePath), repeat: 2, expect: expectCode('AUTH_REPLAYED') });
  const replayBody = JSON.stringify(VALID_MANIFEST.command); // refused as a manifest, but the nonce is spent first
  out.push({ name: 'auth: replayed refused quote', method: 'POST', path: '/v1/quotes', body: replayBody, headers: await sign(ctx.tenant, 'POST', '/v1/quotes', replayBody), repeat: 2, expect: expectCode('AUTH_REPLAYED') });

  // Routes and methods.
  for (const path of ['/v1', '/v1/leases', '/v1/quotes/1', '/admin', '/v1/leases/1/logs/x', '/v2/offer', '/..%2f..%2fetc/passwd', '/v1/offer/', '/%00']) {
    out.push({ name: `route: GET ${path}`, method: 'GET', path, headers: {}, expect: expectCode('ROUTE_NOT_FOUND') });
  }
  for (const target of ['http://[', 'http://a:99999/v1/offer']) {
    out.push({ name: `route: request target ${target}`, method: 'GET', path: target, headers: {}, expect: expectCode('REQUEST_INVALID') });
  }
  for (const [method, path] of [
    ['DELETE', '/v1/offer'],
    ['PUT', '/v1/quotes'],
    ['GET', '/v1/quotes'],
    ['POST', leasePath],
    ['DELETE', leasePath],
    ['POST', '/healthz'],
    ['POST', '/metrics'],
    ['GET', `${leasePath}/checkpoints/1/countersign`],
  ] as const) {
    out.push({ name: `method: ${method} ${path}`, method, path, headers: {}, expect: expectCode('METHOD_NOT_ALLOWED') });
  }

  // Lease access: only the lease's tenant; well-formed ids only.
  const missing = ctx.missingLeaseId ?? '999999999';
  for (const path of [leasePath, `${leasePath}/usage`]) {
    out.push({ name: `lease: stranger reads ${path}`, method: 'GET', path, headers: await sign(stranger, 'GET', path), expect: expectCode('AUTH_FORBIDDEN') });
  }
  const counterPath = `${leasePath}/checkpoints/1/countersign`;
  const counterBody = JSON.stringify({ signature: `0x${'1'.repeat(130)}` });
  out.push({ name: 'lease: stranger countersigns', method: 'POST', path: counterPath, body: counterBody, headers: await sign(stranger, 'POST', counterPath, counterBody), expect: expectCode('AUTH_FORBIDDEN') });
  for (const path of [`/v1/leases/${missing}`, `/v1/leases/${missing}/usage`]) {
    out.push({ name: `lease: unknown ${path}`, method: 'GET', path, headers: await sign(ctx.tenant, 'GET', path), expect: expectCode('LEASE_NOT_FOUND') });
  }
  for (const id of ['abc', '-1', '1e3', '0x10', '01', '1.0', '9'.repeat(100), '%20', '1%2F2', '%zz', '%E0%A4%A']) {
    const path = `/v1/leases/${id}`;
    out.push({ name: `lease id ${id.slice(0, 20)}`, method: 'GET', path, headers: await sign(ctx.tenant, 'GET', path), expect: expectCode('REQUEST_INVALID') });
  }
  for (const seq of ['x', '-1', '99999999999999999999', '1.5']) {
    const path = `${leasePath}/checkpoints/${seq}/countersign`;
    out.push({ name: `checkpoint seq ${seq}`, method: 'POST', path, body: counterBody, headers: await sign(ctx.tenant, 'POST', path, counterBody), expect: expectCode('REQUEST_INVALID') });
  }
  for (const [name, value] of [
    ['no signature', {}],
    ['signature and more', { signature: `0x${'1'.repeat(130)}`, tenant: ctx.tenant.address }],
    ['signature not hex', { signature: 'z'.repeat(132) }],
    ['signature too short', { signature: '0x12' }],
    ['signature a number', { signature: 12 }],
    ['body an array', [`0x${'1'.repeat(130)}`]],
  ] as const) {
    const text = JSON.stringify(value);
    out.push({ name: `countersign: ${name}`, method: 'POST', path: counterPath, body: text, headers: await sign(ctx.tenant, 'POST', counterPath, text), expect: expectCode('REQUEST_INVALID') });
  }
  return out;
}

export interface HostileReply {
  status: number;
  code: string | undefined;
  body: string;
}

/** Sends one hostile request (`repeat` times) and returns the last reply, raw. */
export async function sendHostile(host: string, port: number, req: HostileRequest, secure = false): Promise<HostileReply> {
  let reply: HostileReply = { status: 0, code: undefined, body: '' };
  for (let i = 0; i < (req.repeat ?? 1); i += 1) reply = await sendOnce(host, port, req, secure);
  return reply;
}

/** A reply slower than this is a hung request: the run names it instead of waiting forever. */
const REPLY_TIMEOUT_MS = 20_000;

function sendOnce(host: string, port: number, req: HostileRequest, secure: boolean): Promise<HostileReply> {
  return new Promise((resolve, reject) => {
    let answered = false;
    // A hostile client checks no certificate: what is tested is the server's answer.
    const send = secure ? httpsRequest : request;
    const r = send({ host, port, method: req.method, path: req.path, headers: req.headers, timeout: REPLY_TIMEOUT_MS, ...(secure ? { rejectUnauthorized: false } : {}) }, (res) => {
      answered = true;
      res.on('error', reject);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let code: string | undefined;
        try {
          code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
        } catch {
          code = undefined;
        }
        resolve({ status: res.statusCode ?? 0, code, body });
      });
    });
    // The server may close an oversize upload before reading it all; the reply still counts.
    r.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
    r.on('timeout', () => r.destroy(new Error(`${req.name}: no reply in ${REPLY_TIMEOUT_MS} ms`)));
    r.on('close', () => (answered ? undefined : reject(new Error(`${req.name}: the connection closed before a reply`))));
    if (req.body !== undefined) r.write(req.body);
    r.end();
  });
}
