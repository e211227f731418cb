import { isProviderError } from '../../../src/errors';
import { Sandbox, buildContainerSpec, chooseSandbox, describeSandbox, refuseUnsandboxableLease, sandboxSupport, type SandboxSupport } from '../../../src/runtime';
import { manualClock } from '../../../src/util/clock';
import { aConfig, aManifest, anAllocation } from '../../fixtures/runtime';

const NONE: SandboxSupport = { runsc: false, runscGpu: false };
const RUNSC: SandboxSupport = { runsc: true, runscGpu: false };
const RUNSC_GPU: SandboxSupport = { runsc: true, runscGpu: true };

describe('sandboxSupport', () => {
  test.each([
    ['no runtimes at all', undefined, NONE],
    ['runc only', { runc: { path: 'runc' } }, NONE],
    ['runsc registered as install.sh does', { runc: {}, runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--network=host'] } }, RUNSC],
    ['runsc with nvproxy', { runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--network=host', '--nvproxy=true'] } }, RUNSC_GPU],
    ['runsc with a nvproxy turned off', { runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--nvproxy=false'] } }, RUNSC],
    ['a runsc entry that is not an object', { runsc: 'yes' }, NONE],
  ])('reads %s', (_what, runtimes, expected) => {
    expect(sandboxSupport(runtimes)).toEqual(expected);
  });
});

describe('chooseSandbox', () => {
  test.each([
    ['auto', RUNSC, 0, 'runsc'],
    ['auto', RUNSC, 1, 'runc'],
    ['auto', RUNSC_GPU, 1, 'runsc'],
    ['auto', NONE, 0, 'runc'],
    ['auto', NONE, 2, 'runc'],
    ['runsc', RUNSC, 0, 'runsc'],
    ['runsc', RUNSC_GPU, 1, 'runsc'],
    ['runc', RUNSC, 0, 'runc'],
    ['runc', NONE, 1, 'runc'],
  ] as const)('%s with %j and %d GPU(s) runs under %s', (setting, support, gpus, runtime) => {
    expect(chooseSandbox(setting, support, gpus).runtime).toBe(runtime);
  });

  test('runsc asked of an engine without it fails with the fix that installs it', () => {
    let error: unknown;
    try {
      chooseSandbox('runsc', NONE, 0);
    } catch (err) {
      error = err;
    }
    expect(isProviderError(error, 'CONTAINER_CREATE_FAILED')).toBe(true);
    expect((error as { fix?: string }).fix).toMatch(/install.sh --with-gvisor/);
  });

  test('runsc asked for a GPU lease of a runsc without nvproxy fails, naming auto as the way out', () => {
    expect(() => chooseSandbox('runsc', RUNSC, 1)).toThrow(/cannot pass a GPU through/);
  });
});

describe('refuseUnsandboxableLease (admission)', () => {
  test('refuses a GPU lease when every lease must run under gVisor, with the reason and a fix', () => {
    let error: unknown;
    try {
      refuseUnsandboxableLease('runsc', 1);
    } catch (err) {
      error = err;
    }
    expect(isProviderError(error, 'POLICY_REFUSED')).toBe(true);
    expect((error as Error).message).toMatch(/resources.gpus: .*gVisor/);
    expect((error as { fix?: string }).fix).toMatch(/runtime.sandbox to auto/);
  });

  test.each([
    ['runsc', 0],
    ['auto', 1],
    ['runc', 1],
  ] as const)('lets %s with %d GPU(s) through', (setting, gpus) => {
    expect(() => refuseUnsandboxableLease(setting, gpus)).not.toThrow();
  });
});

describe('describeSandbox', () => {
  test('warns when only runc is there for strangers, with the install fix', () => {
    const report = describeSandbox('auto', NONE);
    expect(report).toMatchObject({ cpuLeases: 'runc', gpuLeases: 'runc', warning: expect.stringMatching(/only runc/), fix: expect.stringMatching(/--with-gvisor/) });
  });

  test('says GPU leases are refused under runsc, and no warning', () => {
    const report = describeSandbox('runsc', RUNSC);
    expect(report).toMatchObject({ cpuLeases: 'runsc', gpuLeases: null, warning: null });
    expect(report.why).toMatch(/GPU leases are refused/);
  });

  test('says leases cannot start when runsc is asked and missing', () => {
    expect(describeSandbox('runsc', NONE)).toMatchObject({ cpuLeases: null, warning: expect.stringMatching(/no runsc runtime/) });
  });
});

describe('Sandbox', () => {
  test('asks the engine once a minute, and runc asks nothing', async () => {
    const clock = manualClock(0);
    let asked = 0;
    let runtimes: object = { runc: {} };
    const engine = {
      info: async () => {
        asked += 1;
        return { Runtimes: runtimes };
      },
    };
    const sandbox = new Sandbox(engine, 'auto', clock);
    const bounds = { timeoutMs: 1_000 };
    expect((await sandbox.choose(0, bounds)).runtime).toBe('runc');
    runtimes = { runc: {}, runsc: { path: '/usr/bin/runsc' } };
    expect((await sandbox.choose(0, bounds)).runtime).toBe('runc');
    expect(asked).toBe(1);
    clock.advance(60_000);
    expect((await sandbox.choose(0, bounds)).runtime).toBe('runsc');
    expect(asked).toBe(2);
    await new Sandbox(engine, 'runc', clock).choose(0, bounds);
    expect(asked).toBe(2);
  });
});

describe('the container spec of a sandbox', () => {
  const build = (sandbox?: 'runsc' | 'runc') => buildContainerSpec({ manifest: aManifest(), allocation: anAllocation(), image: 'sha256:abc', settings: aConfig(), sandbox });

  test('names runsc as the runtime and labels the container with it', () => {
    const spec = build('runsc');
    expect(spec.HostConfig.Runtime).toBe('runsc');
    expect(spec.Labels?.['provider.sandbox']).toBe('runsc');
  });

  test('sizes the pids cgroup for the sandbox\'s own host tasks as well as the workload\'s processes', () => {
    expect(build('runsc').HostConfig.PidsLimit).toBe(1024 * 8 + 64);
    expect(build('runc').HostConfig.PidsLimit).toBe(1024);
  });

  test('limits processes inside gVisor with RLIMIT_NPROC, which runc would count host-wide', () => {
    expect(build('runsc').HostConfig.Ulimits).toContainEqual({ Name: 'nproc', Soft: 1024, Hard: 1024 });
    expect(build('runc').HostConfig.Ulimits?.map((u) => u.Name)).toEqual(['nofile']);
  });

  test('leaves runc to the engine\'s default runtime, and says runc in the label', () => {
    for (const spec of [build('runc'), build()]) {
      expect(spec.HostConfig.Runtime).toBeUndefined();
      expect(spec.Labels?.['provider.sandbox']).toBe('runc');
    }
  });
});
