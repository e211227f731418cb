import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DaemonProcess } from './daemon-process';

jest.setTimeout(240_000);

const ROOT = join(__dirname, '..', '..');
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

/**
 * `provider start` with `args` as a person runs it: on a pseudo-terminal (util-linux `script`),
 * until it is ready and has printed its summary, then Ctrl-C typed into the terminal. Returns what
 * the terminal showed, colours removed (`exec`: Ctrl-C must reach the daemon, not a shell around
 * it). `tty: false` runs it on pipes instead (journald's view).
 */
async function runStart(daemon: DaemonProcess, args: string[], tty = true): Promise<{ text: string; code: number | null }> {
  const command = [process.execPath, join(ROOT, 'bin', 'provider'), 'start', '-c', daemon.configPath, ...args];
  const child = tty
    ? spawn('script', ['-qfec', `exec ${command.map((a) => `'${a}'`).join(' ')}`, '/dev/null'], { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'xterm' } })
    : spawn(command[0]!, command.slice(1), { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME } });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  const ready = tty ? /leases: none yet/ : /provider daemon ready/;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within 120 s; it showed:\n${text}`)), 120_000);
    const check = (): void => {
      if (ready.test(text)) {
        clearTimeout(timer);
        child.stdout.off('data', check);
        child.stderr.off('data', check);
        resolve();
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    void closed.then(() => reject(new Error(`exited before it was ready; it showed:\n${text}`)));
  });
  if (tty) child.stdin!.write('\u0003');
  else child.kill('SIGINT');
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await closed;
  clearTimeout(killer);
  return { text: text.replace(ANSI, '').replaceAll('\r', ''), code };
}

describe('provider start at a terminal', () => {
  let daemon: DaemonProcess;
  beforeAll(async () => {
    daemon = await DaemonProcess.create('calm-terminal', { log: { level: 'info', format: 'auto' } });
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('shows the steps, the summary and warnings as readable lines, and INFO lines only with --verbose', async () => {
    const calm = await runStart(daemon, []);
    expect(calm.code).toBe(0);
    expect(calm.text).toMatch(/^… connecting to the chain \(\d+\.\d s\)$/m);
    expect(calm.text).toMatch(/^provider daemon running on the LOCAL DEVNET/m);
    expect(calm.text).toMatch(/^\d\d:\d\d:\d\d {2}leases: none yet · free: /m);
    // The devnet's warning, in a line of its own: time, level, component, the sentence, its fields.
    expect(calm.text).toMatch(/^\d\d:\d\d:\d\d {2}warning {2}devnet: RUNNING ON A LOCAL DEVNET \(anvil\): .* {2}devnet=true chainId=31337 /m);
    expect(calm.text).not.toMatch(/^\d\d:\d\d:\d\d {2}info /m);
    expect(calm.text).not.toMatch(/devnet contracts deployed|transaction confirmed|provider registered on-chain|provider daemon ready|stop requested/);
    expect(calm.text).not.toMatch(/\{"level"/);
    expect(calm.text).toMatch(/^stopping \(SIGINT\): no new quotes/m);
    expect(calm.text).toMatch(/^stopped$/m);

    const verbose = await runStart(daemon, ['--verbose']);
    expect(verbose.code).toBe(0);
    expect(verbose.text).toMatch(/^\d\d:\d\d:\d\d {2}info {5}provider daemon ready {2}apiUrl=https:\/\/127\.0\.0\.1:\d+ /m);
    expect(verbose.text).toMatch(/^\d\d:\d\d:\d\d {2}info {5}stop requested {2}signal=SIGINT$/m);
    expect(verbose.text).toMatch(/^\d\d:\d\d:\d\d {2}info {5}connecting to the chain {2}rpcUrl=\[redacted\] chainId=31337$/m);
    expect(verbose.text).toMatch(/^\d\d:\d\d:\d\d {2}warning {2}devnet: RUNNING ON A LOCAL DEVNET/m);
  });

  it('writes JSON log lines when not at a terminal, whatever --verbose says', async () => {
    const piped = await runStart(daemon, ['--verbose'], false);
    expect(piped.code).toBe(0);
    const lines = piped.text.split('\n').filter((line) => line.trim() !== '');
    const json = lines.filter((line) => line.startsWith('{"level"')).map((line) => JSON.parse(line) as { level: number; msg: string });
    expect(json.map((l) => l.msg)).toEqual(expect.arrayContaining(['provider daemon ready', 'stop requested']));
    expect(json.some((l) => l.level === 40 && /RUNNING ON A LOCAL DEVNET/.test(l.msg))).toBe(true);
    // Nothing but JSON on stderr, and no step lines or summary (those are for a person).
    expect(lines.filter((line) => !line.startsWith('{') && !/^ {2}|^provider daemon running|^press Ctrl-C/.test(line))).toEqual([]);
  });
});
