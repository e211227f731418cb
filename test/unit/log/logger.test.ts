import { PassThrough } from 'node:stream';
import { createLogger } from '../../../src/log';

function capture(isTTY: boolean): { stream: PassThrough & { isTTY?: boolean }; text: () => string } {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean };
  stream.isTTY = isTTY;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('createLogger', () => {
  it('writes JSON lines when not on a terminal (journald, pipes)', () => {
    const out = capture(false);
    createLogger({ level: 'info', format: 'auto', destination: out.stream }).info({ leaseId: 'l1' }, 'pulling image');
    const line = JSON.parse(out.text().trim()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, leaseId: 'l1', msg: 'pulling image' });
  });

  it('writes readable lines on a terminal', () => {
    const out = capture(true);
    createLogger({ level: 'info', format: 'auto', destination: out.stream }).info({ leaseId: 'l1' }, 'pulling image');
    expect(out.text()).toMatch(/INFO.*pulling image/);
    expect(() => JSON.parse(out.text())).toThrow();
  });

  it('drops lines below the level', () => {
    const out = capture(false);
    const log = createLogger({ level: 'warn', format: 'json', destination: out.stream });
    log.info('hidden');
    log.warn('shown');
    expect(out.text()).not.toMatch(/hidden/);
    expect(out.text()).toMatch(/shown/);
  });

  it('never writes passwords or registry credentials, wherever they sit in the object', () => {
    const out = capture(false);
    createLogger({ level: 'info', format: 'json', destination: out.stream }).info(
      {
        password: 'hunter2',
        manifest: { registryAuth: { username: 'u', password: 'p4ss' } },
        lease: { manifest: { registryAuth: { password: 'deep3' } }, config: { network: { rpcUrl: 'https://x/KEY4' } } },
        headers: { 'X-Registry-Auth': 'b64creds' },
        auth: 'tok',
      },
      'pull',
    );
    expect(out.text()).not.toMatch(/hunter2|p4ss|deep3|KEY4|b64creds|tok"/);
    expect(out.text()).toMatch(/\[redacted\]/);
  });
});
