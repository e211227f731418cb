import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LogLine, RuntimeEvent } from '../../../src/runtime';
import { aManifest } from '../../fixtures/runtime';
import { RuntimeHarness, sh, until } from './harness';

jest.setTimeout(180_000);

const SCRIPT = join(__dirname, '../../../scripts/ensure-docker.sh');
const h = new RuntimeHarness({ runtime: { nofileLimit: 4096 } });

/** Stops dockerd (SIGTERM, as systemd would) and brings it back with scripts/ensure-docker.sh. */
async function restartEngine(): Promise<void> {
  const pid = Number(readFileSync('/var/run/docker.pid', 'utf8').trim());
  process.kill(pid, 'SIGTERM');
  await until('dockerd to exit', async () => {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch {
      return true;
    }
  }, 60_000, 100);
  await sh('bash', [SCRIPT], { timeout: 90_000 });
}

async function liveRestore(): Promise<boolean> {
  const info = (await h.docker.info()) as { LiveRestoreEnabled?: boolean };
  return info.LiveRestoreEnabled === true;
}

afterAll(async () => {
  await until('the engine', async () => ((await h.docker.ping()) ? true : undefined), 60_000).catch(() => sh('bash', [SCRIPT]));
  await h.cleanup();
});

describe('engine restart mid-lease', () => {
  test('events and logs resume after dockerd restarts, and the lease keeps running', async () => {
    // Containers survive a dockerd restart only with live-restore; an engine started before
    // scripts/ensure-docker.sh passed --live-restore is restarted once to get it.
    if (!(await liveRestore())) await restartEngine();
    expect(await liveRestore()).toBe(true);

    const image = await h.imageId();
    const leaseId = h.leaseId('restart');
    const manifest = aManifest({ command: ['sh', '-c'], args: ['i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.1; done'] });

    const controller = new AbortController();
    const events: RuntimeEvent[] = [];
    let subscribed = 0;
    const following = h.runtime.followEvents((e) => events.push(e), { signal: controller.signal, onSubscribed: () => { subscribed += 1; } });
    await until('the event stream', async () => (subscribed > 0 ? true : undefined));

    const started = await h.runtime.start({ manifest, allocation: h.allocation(leaseId, manifest), imageId: image });
    const lines: LogLine[] = [];
    const reading = (async () => {
      for await (const line of h.runtime.logs(leaseId, { follow: true, signal: controller.signal })) lines.push(line);
    })();
    await until('some log lines', async () => (lines.length >= 5 ? true : undefined));
    await until('the start event', async () => (events.some((e) => e.kind === 'container' && e.action === 'start' && e.leaseId === leaseId) ? true : undefined));

    const beforeRestart = lines.length;
    await restartEngine();

    // The container lived through it, and its firewall rules are still there.
    const info = await h.runtime.inspect(leaseId);
    expect(info.State.Running).toBe(true);
    expect(info.Id).toBe(started.containerId);
    expect((await sh('iptables', ['-S'])).stdout).toContain(`-j ${h.firewall.chainsOf(leaseId).forward}`);

    await until('engine-back', async () => (events.some((e) => e.kind === 'engine-back') ? true : undefined), 30_000);
    expect(events.some((e) => e.kind === 'engine-lost')).toBe(true);
    await until('log lines written after the restart', async () => (lines.length >= beforeRestart + 20 ? true : undefined), 30_000);

    // Resumed where it stopped: no line twice, in order.
    const numbers = lines.map((l) => Number(/^line-(\d+)$/.exec(l.text)?.[1]));
    expect(new Set(numbers).size).toBe(numbers.length);
    expect([...numbers].sort((a, b) => a - b)).toEqual(numbers);

    // Events of the container after the restart arrive on the re-followed stream.
    await h.runtime.stop(leaseId, 'requested', { timeoutSeconds: 1 });
    await until('the die event after the restart', async () =>
      events.some((e) => e.kind === 'container' && e.action === 'die' && e.leaseId === leaseId) ? true : undefined,
    );
    expect(await h.runtime.wait(leaseId)).toMatchObject({ reason: 'requested' });

    controller.abort();
    await following;
    await reading;
  });
});
