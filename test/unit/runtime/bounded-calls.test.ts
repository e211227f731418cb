import Docker from 'dockerode';
import { Firewall, ImageService, LeaseRuntime, type RuntimeEvent } from '../../../src/runtime';
import { followEvents } from '../../../src/runtime/events';
import { silentLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { aConfig } from '../../fixtures/runtime';
import { SilentEngine } from '../../support/silent-engine';

const TIMEOUT_MS = 150;
const engine = new SilentEngine();
const config = aConfig({});
config.docker.requestTimeoutMs = TIMEOUT_MS;
let docker: Docker;
let runtime: LeaseRuntime;

beforeAll(async () => {
  await engine.listen();
  docker = new Docker({ socketPath: engine.socketPath });
  const noExec = async () => ({ stdout: '', stderr: '' });
  runtime = new LeaseRuntime({ docker, firewall: new Firewall(noExec, silentLogger()), config, log: silentLogger(), clock: systemClock });
});
afterAll(() => engine.close());

/** Runs `call` and says how it failed and how long it took. */
async function failure(call: () => Promise<unknown>): Promise<{ code: unknown; ms: number }> {
  const started = Date.now();
  try {
    await call();
  } catch (err) {
    return { code: (err as { code?: unknown }).code, ms: Date.now() - started };
  }
  throw new Error('the call answered');
}

describe('engine calls against an engine that never answers', () => {
  test.each([
    ['status (container inspect)', 1, () => runtime.status('lease-1')],
    ['list (listContainers)', 1, () => runtime.list()],
    ['reconcile (listContainers)', 1, () => runtime.reconcile(['lease-1'])],
    ['prepareNetwork (network create)', 1, () => runtime.prepareNetwork('lease-1', { egress: 'public' } as never)],
    // Calls that walk files are given six request timeouts.
    ['remove (container remove)', 6, () => runtime.remove('lease-1')],
    ['the disk quota pass (listContainers with sizes)', 6, () => runtime.enforceDiskQuota()],
    ['logs without follow', 6, async () => {
      for await (const line of runtime.logs('lease-1', {})) void line;
    }],
  ])('%s fails with BACKEND_TIMEOUT in bounded time', async (_what, requests, call) => {
    const { code, ms } = await failure(call);
    expect(code).toBe('BACKEND_TIMEOUT');
    expect(ms).toBeGreaterThanOrEqual(requests * TIMEOUT_MS - 5);
    expect(ms).toBeLessThan(requests * TIMEOUT_MS + 1_000);
  });

  test('an image inspect before a pull fails with BACKEND_TIMEOUT', async () => {
    const images = new ImageService(docker, config, silentLogger(), systemClock);
    const { code, ms } = await failure(() => images.prepare('provider-test/busybox:latest'));
    expect(code).toBe('BACKEND_TIMEOUT');
    expect(ms).toBeLessThan(2_000);
  });

  test('the request is abandoned: its connection is closed', async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    const before = engine.connections.size;
    const pending = failure(() => runtime.status('lease-2'));
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS / 2));
    expect(engine.connections.size).toBe(before + 1);
    await pending;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(engine.connections.size).toBe(before);
  });

  test("a caller's abort fails a call at once with OPERATION_ABORTED, before the timeout", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    const { code, ms } = await failure(() => runtime.status('lease-1', { signal: controller.signal }));
    expect(code).toBe('OPERATION_ABORTED');
    expect(ms).toBeLessThan(TIMEOUT_MS);
    await expect(runtime.status('lease-1', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'OPERATION_ABORTED' });
  });

  test('an event subscription that gets no answer reports the engine lost', async () => {
    const controller = new AbortController();
    const events: RuntimeEvent[] = [];
    const following = followEvents(docker, (e) => {
      events.push(e);
      controller.abort();
    }, { signal: controller.signal, log: silentLogger(), clock: systemClock, requestTimeoutMs: TIMEOUT_MS });
    await following;
    expect(events).toEqual([{ kind: 'engine-lost' }]);
  });
});
