import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { DockerBackend, Firewall, ImageService, LeaseRuntime, type BackendEvent } from '../../../src/runtime';
import { followEvents, type RuntimeEvent } from '../../../src/runtime/events';
import { streamLogs } from '../../../src/runtime/logs';
import { silentLogger } from '../../../src/log';
import { manualClock } from '../../../src/util/clock';
import { aConfig } from '../../fixtures/runtime';

function frame(time: string, text: string): Buffer {
  const payload = Buffer.from(`${time} ${text}\n`);
  const header = Buffer.alloc(8);
  header[0] = 1;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

const refused = () => Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' });

describe('log stream resume', () => {
  test('reconnects after the engine closes the stream and gives each line once', async () => {
    const queries: Record<string, unknown>[] = [];
    const answers: (() => unknown)[] = [
      () => Readable.from([frame('2026-01-01T00:00:01.000000001Z', 'a'), frame('2026-01-01T00:00:02Z', 'b'), frame('2026-01-01T00:00:02Z', 'c')]),
      () => { throw refused(); },
      // The engine replays from `since` inclusive: b and c again, then new lines.
      () => Readable.from([frame('2026-01-01T00:00:02Z', 'b'), frame('2026-01-01T00:00:02Z', 'c'), frame('2026-01-01T00:00:03Z', 'd')]),
    ];
    let inspects = 0;
    const docker = {
      getContainer: () => ({
        logs: async (q: Record<string, unknown>) => {
          queries.push(q);
          const next = answers.shift();
          if (!next) throw new Error('no more');
          return next();
        },
        // Running after the first close, stopped after the last.
        inspect: async () => ({ State: { Running: (inspects += 1) === 1, Restarting: false } }),
      }),
    } as unknown as Docker;
    const lines: string[] = [];
    for await (const line of streamLogs(docker, 'c1', { follow: true, tail: 2 }, { log: silentLogger(), clock: manualClock(0, { autoAdvance: true }), requestTimeoutMs: 1_000 })) lines.push(line.text);
    expect(lines).toEqual(['a', 'b', 'c', 'd']);
    expect(queries[0]).toMatchObject({ follow: true, tail: 2, timestamps: true });
    // 2 s before the newest line: stderr has given none yet, and may have one stamped a little earlier.
    expect(queries[1]?.since).toBe('1767225600.000000000');
    expect(queries[2]).not.toHaveProperty('tail');
  });
});

/** An engine event line as `docker events` streams it. */
function engineEvent(action: string, attributes: Record<string, string>, timeNano: number): string {
  return `${JSON.stringify({ Type: 'container', Action: action, Actor: { ID: 'abc', Attributes: attributes }, timeNano })}\n`;
}

/** An engine whose event subscriptions get `answers` in turn; when they run out it aborts `controller`. */
function eventEngine(answers: (() => unknown)[], controller: AbortController, calls: Record<string, unknown>[] = []): Docker {
  return {
    getEvents: async (opts: Record<string, unknown>) => {
      calls.push(opts);
      const next = answers.shift();
      if (!next) {
        controller.abort();
        throw new Error('done');
      }
      return next();
    },
  } as unknown as Docker;
}

describe('event follower', () => {
  test('reports engine-lost and engine-back, and re-follows from the last event it saw', async () => {
    const controller = new AbortController();
    const calls: Record<string, unknown>[] = [];
    const event = (action: string, timeNano: number) => engineEvent(action, { 'provider.lease-id': 'L1', exitCode: '0' }, timeNano);
    const docker = eventEngine([
      () => Readable.from([event('start', 1_700_000_000_000_000_000)]),
      () => { throw refused(); },
      () => Readable.from([event('die', 1_700_000_005_000_000_000)]),
    ], controller, calls);
    const events: RuntimeEvent[] = [];
    await followEvents(docker, (e) => events.push(e), { signal: controller.signal, log: silentLogger(), retryMs: 1, clock: manualClock(1_699_999_999_000, { autoAdvance: true }), requestTimeoutMs: 1_000 });
    expect(events.map((e) => (e.kind === 'container' ? `${e.action}:${e.leaseId}` : e.kind))).toEqual(['start:L1', 'engine-lost', 'engine-back', 'die:L1', 'engine-lost']);
    expect(calls[0]).not.toHaveProperty('since');
    expect(calls[0]?.filters).toBe(JSON.stringify({ type: ['container'], label: ['provider.managed=true'] }));
    expect(calls[1]?.since).toBe('1700000000.000000001');
    expect(calls[2]?.since).toBe('1700000000.000000001');
  });

  test("DockerBackend.watch maps the engine's events: a die is an exit by runtime id, a closed stream is lost, a new one is back", async () => {
    const controller = new AbortController();
    const docker = eventEngine([
      () => Readable.from([engineEvent('start', { 'provider.lease-id': 'L1' }, 1), engineEvent('die', { 'provider.lease-id': 'L1', exitCode: '3' }, 2)]),
      () => { throw refused(); },
      () => Readable.from([engineEvent('oom', { 'provider.lease-id': 'L2' }, 3), engineEvent('die', { 'provider.lease-id': 'L2', exitCode: '137' }, 4)]),
    ], controller);
    const config = aConfig();
    const clock = manualClock(0, { autoAdvance: true });
    const log = silentLogger();
    const runtime = new LeaseRuntime({ docker, firewall: new Firewall(async () => ({ stdout: '', stderr: '' }), log), config, log, clock });
    const images = new ImageService(docker, config, log, clock);
    const counters = { read: () => Promise.reject(new Error('not read here')), forget: () => undefined };
    const backend = new DockerBackend({ docker, runtime, images, counters, config, clock, log });
    const events: BackendEvent[] = [];
    await backend.watch((e) => events.push(e), { signal: controller.signal });
    expect(events).toEqual([
      { kind: 'exited', runtimeId: 'L1', exitCode: 3 },
      { kind: 'lost' },
      { kind: 'back' },
      { kind: 'exited', runtimeId: 'L2', exitCode: 137 },
      { kind: 'lost' },
    ]);
  });
});
