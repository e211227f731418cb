import { PassThrough } from 'node:stream';
import { createTerminalLogger, quieter, terminalLine } from '../../../src/log';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('the terminal log of provider start', () => {
  it('writes a warning as one readable line: time, level word, component, sentence, fields', () => {
    const line = terminalLine({ level: 40, time: '2026-12-04T00:20:26.000Z', pid: 1, component: 'settlement', msg: 'a payment transaction failed', leaseId: '7', error: 'out of gas' }, false);
    expect(line).toMatch(/^\d\d:\d\d:\d\d {2}warning {2}settlement: a payment transaction failed {2}leaseId=7 error="out of gas"\n$/);
  });

  it('puts a fix on a line of its own under the error', () => {
    const line = terminalLine({ level: 50, time: Date.now(), msg: 'the API cannot listen', code: 'PORT_UNAVAILABLE', fix: 'set api.port' }, false);
    expect(line.split('\n')).toEqual([expect.stringMatching(/ERROR {4}the API cannot listen {2}code=PORT_UNAVAILABLE$/), `${' '.repeat(19)}fix: set api.port`, '']);
  });

  it('colours the level only when asked', () => {
    expect(terminalLine({ level: 40, msg: 'x' }, true)).toContain('\u001b[33mwarning');
    expect(terminalLine({ level: 40, msg: 'x' }, false)).not.toContain('\u001b[');
  });

  it('drops INFO at level warn and redacts secrets like the JSON log', () => {
    const out = capture();
    const log = createTerminalLogger({ level: 'warn', destination: out.stream, colour: false });
    log.info('hidden detail');
    log.warn({ rpcUrl: 'https://key@rpc.example', nested: { password: 'hunter2' } }, 'shown');
    expect(out.text()).not.toMatch(/hidden detail/);
    expect(out.text()).toMatch(/warning {2}shown {2}rpcUrl=\[redacted\] nested=\{"password":"\[redacted\]"\}/);
    expect(out.text()).not.toMatch(/hunter2|key@rpc/);
  });

  it('keeps the quieter of two levels', () => {
    expect(quieter('info', 'warn')).toBe('warn');
    expect(quieter('error', 'warn')).toBe('error');
    expect(quieter('debug', 'warn')).toBe('warn');
    expect(quieter('silent', 'warn')).toBe('silent');
  });
});
