import { LogDigest, resultDigest } from '../../../src/settlement';
import type { LogLine } from '../../../src/runtime/logs';
import { EngineHarness } from './engine-harness';

jest.setTimeout(20_000);

let h: EngineHarness;
afterEach(() => h?.stop());

const PRINTED = [
  { stream: 'stdout' as const, text: 'hello' },
  { stream: 'stderr' as const, text: 'warning: tenant output' },
  { stream: 'stdout' as const, text: 'done' },
];

async function archived(leaseId: string): Promise<LogLine[]> {
  const out: LogLine[] = [];
  for await (const line of h.archive!.read(leaseId)) out.push(line);
  return out;
}

async function ranAndExited(id = '1'): Promise<void> {
  h.quote(id);
  h.open(id, id);
  await h.reach(id, 'running');
  h.clock.advance(1_000);
  h.backend.exit(h.runtimeId(id), 0);
}

describe('lease logs that outlive the workload', () => {
  it('archives the logs before the settled workload is removed, and they hash to the result digest', async () => {
    h = new EngineHarness({ archive: true, program: () => ({ lines: PRINTED }) });
    await h.start();
    await ranAndExited();
    const lease = await h.reach('1', 'settled');
    expect(h.backend.has(h.runtimeId('1')).workload).toBe(false);
    const lines = await archived('1');
    expect(lines.map((l) => [l.stream, l.text])).toEqual(PRINTED.map((l) => [l.stream, l.text]));
    const digest = new LogDigest();
    for (const l of lines) digest.add(l.stream, l.text);
    expect(resultDigest(lease.exitCode, digest.digest())).toBe(lease.resultDigest);
    // Kept at least the challenge window (600 s in the fake round) plus the retention after settlement.
    const entry = h.archive!.entry('1')!;
    expect(entry.keepUntil).toBeGreaterThanOrEqual(Math.floor(h.clock.now() / 1000) + 600 + h.config.logArchive.retentionSeconds);
  });

  it('does not remove the workload while its logs cannot be archived, and archives then removes once they can', async () => {
    h = new EngineHarness({ archive: true, program: () => ({ lines: PRINTED }) });
    await h.start();
    const logs = jest.spyOn(h.backend, 'logs');
    // eslint-disable-next-line require-yield
    logs.mockImplementation(async function* () {
      throw new Error('engine busy');
    });
    await ranAndExited();
    await h.reach('1', 'settling');
    // Several settlement rounds pass: it stays settling with its workload and no archive.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(h.lease('1').state).toBe('settling');
    expect(h.backend.has(h.runtimeId('1')).workload).toBe(true);
    expect(h.archive!.entry('1')).toBeUndefined();
    logs.mockRestore();
    await h.reach('1', 'settled');
    expect((await archived('1')).map((l) => l.text)).toEqual(PRINTED.map((l) => l.text));
  });

  it('after a crash between the archive and the removal, the restarted engine keeps that archive and removes the workload', async () => {
    h = new EngineHarness({ archive: true, program: () => ({ lines: PRINTED }) });
    await h.start();
    const remove = jest.spyOn(h.backend, 'remove').mockRejectedValue(new Error('daemon killed here'));
    await ranAndExited();
    await h.reach('1', 'settling');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const before = h.archive!.entry('1');
    expect(before).toBeDefined();
    expect(h.backend.has(h.runtimeId('1')).workload).toBe(true);
    remove.mockRestore();
    await h.restart();
    await h.reach('1', 'settled');
    expect(h.backend.has(h.runtimeId('1')).workload).toBe(false);
    expect(h.archive!.entry('1')).toEqual(before);
  });

  it('says the logs are lost when the workload vanished before they were archived', async () => {
    h = new EngineHarness({ archive: true, program: () => ({ lines: PRINTED }) });
    await h.start();
    h.quote('1');
    h.open('1', '1');
    await h.reach('1', 'running');
    h.backend.vanish(h.runtimeId('1'));
    await h.reach('1', 'settled');
    expect(h.archive!.entry('1')?.lost).toMatch(/gone before its logs were archived/);
    await expect(archived('1')).rejects.toMatchObject({ code: 'LOGS_GONE' });
  });
});
