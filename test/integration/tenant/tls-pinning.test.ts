import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { webcrypto } from 'node:crypto';
import { JsonRpcProvider, Wallet } from 'ethers';
import { configSchema } from '../../../src/config';
import { isProviderError } from '../../../src/errors';
import { silentLogger } from '../../../src/log';
import { PinnedTransport, TenantClient, type PinSource } from '../../../src/tenant';
import { ensureCertificate, formatPin, generateSelfSigned, inspectCertificate, type CertificatePair } from '../../../src/tls';
import { CHAIN_ID, startApi, type ApiHarness } from '../../support/api-harness';

jest.setTimeout(30_000);

let real: CertificatePair;
let realPin: string;
let impostor: CertificatePair;
let h: ApiHarness;
const tenant = Wallet.createRandom();
// Nothing here touches the chain: offer, lease and logs are API calls only.
const noChain = new JsonRpcProvider('http://127.0.0.1:1', CHAIN_ID, { staticNetwork: true });
const closers: (() => unknown)[] = [];

function clientFor(apiUrl: string, tlsPin: PinSource | undefined): TenantClient {
  return new TenantClient({ signer: tenant, apiUrl, chainId: CHAIN_ID, chain: noChain, ...(tlsPin ? { tlsPin } : {}), requestTimeoutMs: 10_000 });
}

async function refusal(promise: Promise<unknown>): Promise<Error & { code?: string; fix?: string }> {
  return promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (err: Error) => err,
  );
}

beforeAll(async () => {
  real = await generateSelfSigned({ hosts: ['127.0.0.1'], validityDays: 10, now: Date.now() });
  realPin = inspectCertificate(real, Date.now()).sha256;
  impostor = await generateSelfSigned({ hosts: ['127.0.0.1'], validityDays: 10, now: Date.now() });
  h = await startApi({ tls: { cert: real.certPem, key: real.keyPem } });
  h.service.addLease('7', tenant.address);
  h.service.pushLogs('7', 'line one', 'line two');
  h.service.endLogs('7');
});

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

afterAll(async () => {
  await h.close();
  noChain.destroy();
});

describe('a tenant pinned to the provider\'s certificate', () => {
  it('talks to the provider over TLS with the right pin: requests, signed requests and the log stream', async () => {
    const client = clientFor(h.url, realPin);
    expect(h.url).toMatch(/^https:/);
    expect((await client.offer()).chainId).toBe(CHAIN_ID);
    expect((await client.lease('7')).leaseId).toBe('7');
    const lines: string[] = [];
    for await (const entry of client.logs('7', { tail: 10 })) lines.push(entry.line);
    expect(lines).toEqual(['line one', 'line two']);
    // The pin as people copy it (colons, upper case) is the same pin.
    expect((await clientFor(h.url, formatPin(realPin)).offer()).chainId).toBe(CHAIN_ID);
  });

  it('refuses a provider whose certificate is not the pinned one, naming both, before sending a byte', async () => {
    const received: Buffer[] = [];
    const wrong = await listenTls(impostor, (socket) => socket.on('data', (chunk: Buffer) => received.push(chunk)));
    const url = `https://127.0.0.1:${port(wrong)}`;
    const client = clientFor(url, realPin);
    const err = await refusal(client.lease('7'));
    expect(isProviderError(err, 'TLS_PIN_MISMATCH')).toBe(true);
    expect(err.message).toContain(`expected SHA-256 ${formatPin(realPin)}`);
    expect(err.message).toContain(`got ${formatPin(inspectCertificate(impostor, Date.now()).sha256)}`);
    expect(err.fix).toMatch(/do not send anything/);
    const logs = await refusal((async () => {
      for await (const entry of client.logs('7', { tail: 1 })) void entry;
    })());
    expect(isProviderError(logs, 'TLS_PIN_MISMATCH')).toBe(true);
    expect(Buffer.concat(received).length).toBe(0);
  });

  it('detects a man in the middle with its own certificate that alters answers: refused, and the request never reaches it', async () => {
    const plaintext: Buffer[] = [];
    // Terminates TLS with its own certificate, relays to the provider, and rewrites what comes back.
    const mitm = await listenTls(impostor, (client) => {
      const upstream = tlsConnect({ host: '127.0.0.1', port: h.port, rejectUnauthorized: false });
      client.on('data', (chunk: Buffer) => {
        plaintext.push(chunk);
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => client.write(Buffer.from(chunk.toString('latin1').replace(`"chainId":${CHAIN_ID}`, '"chainId":66666'), 'latin1')));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
    });
    const url = `https://127.0.0.1:${port(mitm)}`;
    // Control: a client that checks nothing gets the altered answer through this proxy.
    const altered = await insecureGet(`${url}/v1/offer`);
    expect(altered).toContain('"chainId":66666');
    plaintext.length = 0;

    const err = await refusal(clientFor(url, realPin).offer());
    expect(isProviderError(err, 'TLS_PIN_MISMATCH')).toBe(true);
    expect(Buffer.concat(plaintext).length).toBe(0);
  });

  it('detects an answer altered on the wire under the provider\'s own TLS: the call fails, it never returns the altered answer', async () => {
    let flip = false;
    let clientChunks = 0;
    const relay = await listenTcp((client) => {
      const upstream = netConnect(h.port, '127.0.0.1');
      client.on('data', (chunk: Buffer) => {
        clientChunks += 1;
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        // Once the client has finished its handshake and asked, flip one bit of what comes back.
        if (flip && clientChunks >= 2) chunk[chunk.length - 1]! ^= 0x01;
        client.write(chunk);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
    });
    const url = `https://127.0.0.1:${port(relay)}`;
    // Control: relayed untouched, the pinned call works (the provider's own certificate passes through).
    expect((await clientFor(url, realPin).offer()).chainId).toBe(CHAIN_ID);
    flip = true;
    clientChunks = 0;
    const err = await refusal(clientFor(url, realPin).offer());
    expect(isProviderError(err, 'PROVIDER_UNREACHABLE')).toBe(true);
    expect(err.message).toMatch(/bad record mac|decrypt|socket hang up|ECONNRESET/i);
  });

  it('refuses an https URL without a pin, and plain http anywhere but loopback', () => {
    expect(() => new PinnedTransport('http://198.51.100.7:8420', undefined)).toThrow(expect.objectContaining({ code: 'TLS_PIN_MISSING' }));
    expect(() => new PinnedTransport('http://127.0.0.1:8420', undefined)).not.toThrow();
    return expect(clientFor(h.url, undefined).offer()).rejects.toMatchObject({ code: 'TLS_PIN_MISSING' });
  });

  it('reads a pin from its source once, and again after a mismatch (the provider renewed)', async () => {
    const answers = [inspectCertificate(impostor, Date.now()).sha256, realPin];
    let reads = 0;
    const client = clientFor(h.url, async () => answers[reads++]!);
    await expect(client.offer()).rejects.toMatchObject({ code: 'TLS_PIN_MISMATCH' });
    expect((await client.offer()).chainId).toBe(CHAIN_ID);
    expect((await client.offer()).chainId).toBe(CHAIN_ID);
    expect(reads).toBe(2);
  });

  it('pins an operator\'s CA-issued certificate (the server\'s own, not its CA\'s) and serves it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provider-byo-'));
    const { ca, leaf } = await caIssued('gpu.example.org');
    writeFileSync(join(dir, 'fullchain.pem'), `${leaf.certPem}\n${ca.certPem}\n`);
    writeFileSync(join(dir, 'privkey.pem'), leaf.keyPem);
    const config = configSchema.parse({ dataDir: dir, api: { tls: { certFile: join(dir, 'fullchain.pem'), keyFile: join(dir, 'privkey.pem') } } });
    const cert = await ensureCertificate({ config, now: Date.now(), log: silentLogger() });
    expect(cert.source).toBe('operator');
    expect(cert.info.selfSigned).toBe(false);
    expect(cert.info.sha256).toBe(inspectCertificate(leaf, Date.now()).sha256);
    const byo = await startApi({ tls: { cert: cert.certPem, key: cert.keyPem } });
    closers.push(() => byo.close());
    expect((await clientFor(byo.url, cert.info.sha256).offer()).chainId).toBe(CHAIN_ID);
    const err = await refusal(clientFor(byo.url, inspectCertificate(ca, Date.now()).sha256).offer());
    expect(isProviderError(err, 'TLS_PIN_MISMATCH')).toBe(true);
  });

  it('serves a renewed certificate to new connections without a restart', async () => {
    const renewed = await generateSelfSigned({ hosts: ['127.0.0.1'], validityDays: 10, now: Date.now() });
    const api = await startApi({ tls: { cert: real.certPem, key: real.keyPem } });
    closers.push(() => api.close());
    expect((await clientFor(api.url, realPin).offer()).chainId).toBe(CHAIN_ID);
    api.api.setCertificate({ cert: renewed.certPem, key: renewed.keyPem });
    await expect(clientFor(api.url, realPin).offer()).rejects.toMatchObject({ code: 'TLS_PIN_MISMATCH' });
    expect((await clientFor(api.url, inspectCertificate(renewed, Date.now()).sha256).offer()).chainId).toBe(CHAIN_ID);
  });
});

function port(server: TlsServer | TcpServer): number {
  return (server.address() as AddressInfo).port;
}

async function listenTls(pair: CertificatePair, onSocket: (socket: import('node:tls').TLSSocket) => void): Promise<TlsServer> {
  const server = createTlsServer({ cert: pair.certPem, key: pair.keyPem }, onSocket);
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => sockets.add(s));
  closers.unshift(() => sockets.forEach((s) => s.destroy()));
  return server;
}

async function listenTcp(onSocket: (socket: Socket) => void): Promise<TcpServer> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  closers.unshift(() => sockets.forEach((s) => s.destroy()));
  return server;
}

function insecureGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A CA and a server certificate it issued, as an operator brings from a CA. */
async function caIssued(host: string): Promise<{ ca: CertificatePair; leaf: CertificatePair }> {
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const leafKeys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=Test CA',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 30 * 86_400_000),
    signingAlgorithm: algorithm,
    keys: caKeys as never,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const leafCert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: `CN=${host}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 20 * 86_400_000),
    signingAlgorithm: algorithm,
    publicKey: leafKeys.publicKey as never,
    signingKey: caKeys.privateKey as never,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }])],
  });
  const pem = async (key: webcrypto.CryptoKey): Promise<string> => x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
  return {
    ca: { certPem: caCert.toString('pem'), keyPem: await pem(caKeys.privateKey) },
    leaf: { certPem: leafCert.toString('pem'), keyPem: await pem(leafKeys.privateKey) },
  };
}
