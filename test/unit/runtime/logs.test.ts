import { FrameDecoder } from '../../../src/runtime/logs';

function frame(kind: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = kind;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

describe('log frame decoder', () => {
  test('splits stdout and stderr records with their timestamps', () => {
    const d = new FrameDecoder();
    const lines = d.push(Buffer.concat([frame(1, '2026-01-01T00:00:00.123456789Z hello\n'), frame(2, '2026-01-01T00:00:01Z oops\n')]));
    expect(lines).toEqual([
      { stream: 'stdout', time: '2026-01-01T00:00:00.123456789Z', text: 'hello' },
      { stream: 'stderr', time: '2026-01-01T00:00:01Z', text: 'oops' },
    ]);
  });

  test('keeps a frame split across chunks until it is whole', () => {
    const d = new FrameDecoder();
    const whole = frame(1, '2026-01-01T00:00:00Z split line\n');
    expect(d.push(whole.subarray(0, 5))).toEqual([]);
    expect(d.push(whole.subarray(5, 20))).toEqual([]);
    expect(d.push(whole.subarray(20))).toEqual([{ stream: 'stdout', time: '2026-01-01T00:00:00Z', text: 'split line' }]);
  });
});
