import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { DockerBackend, Firewall, ImageService, LeaseRuntime, type BackendEvent } from '../../../src/runtime';
import { silentLogger } from '../../../src/log';
import { manualClock } from '../../../src/util/clock';
import { aConfig } from '../../fixtures/runtime';

describe('DockerBackend.watch', () => {
  test("maps the engine's events: a die is an exit by runtime id, a closed stream is lost, a new one is back", async () => {
    const controller = new AbortController();
    const event = (action: string, attributes: Record<string, string>, timeNano: number) =>
      `${JSON.stringify({ Type: 'container', Action: action, Actor: { ID: 'abc', Attributes: attributes }, timeNano })}\n`;
    const answers: (() => unknown)[] = [
      () => Readable.from([event('start', { 'provider.lease-id': 'L1' }, 1), event('die', { 'provider.lease-id': 'L1', exitCode: '3' }, 2)]),
      () => { throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }); },
      () => Readable.from([event('oom', { 'provider.lease-id': 'L2' }, 3), event('die', { 'provider.lease-id': 'L2', exitCode: '137' }, 4)]),
    ];
    const docker = {
      getEvents: async () => {
        const next = answers.shift();
        if (!next) {
          controller.abort();
          throw new Error('done');
        }
        return next();
      },
    } as unknown as Docker;
    const config = aConfig();
    const clock = manualClock(0, { autoAdvance: true });
    const log = silentLogger();
    const runtime = new LeaseRuntime({ docker, firewall: new Firewall(async () => ({ stdout: '', stderr: '' }), log), config, log, clock });
    const backend = new DockerBackend({
      docker,
      runtime,
      images: new ImageService(docker, config, log, clock),
      counters: { read: () => Promise.reject(new Error('not used')), forget: () => undefined },
      config,
      clock,
      log,
    });
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
