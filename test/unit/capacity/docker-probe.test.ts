import { DockerProbe, findNvidiaCdiSpecs, type DockerEngineApi, type HostFiles } from '../../../src/capacity';

const ENGINE_27_INFO = {
  ServerVersion: '27.3.1',
  OperatingSystem: 'Ubuntu 24.04.1 LTS',
  OSType: 'linux',
  Architecture: 'x86_64',
  KernelVersion: '6.8.0-48-generic',
  CgroupVersion: '2',
  CgroupDriver: 'systemd',
  Driver: 'overlay2',
  Runtimes: { 'io.containerd.runc.v2': { path: 'runc' }, nvidia: { path: 'nvidia-container-runtime' }, runc: { path: 'runc' } },
  DefaultRuntime: 'runc',
  CDISpecDirs: ['/etc/cdi', '/var/run/cdi'],
};

function engine(info: object, version: object = { Version: '27.3.1', ApiVersion: '1.47' }): DockerEngineApi {
  return { info: async () => info, version: async () => version };
}

function files(tree: Record<string, Record<string, string>>, executables: string[] = []): HostFiles {
  return {
    isExecutable: async (file) => executables.includes(file),
    list: async (dir) => {
      const entries = tree[dir];
      if (!entries) throw Object.assign(new Error(`ENOENT: ${dir}`), { code: 'ENOENT' });
      return Object.keys(entries);
    },
    read: async (file) => {
      const dir = file.slice(0, file.lastIndexOf('/'));
      const content = tree[dir]?.[file.slice(file.lastIndexOf('/') + 1)];
      if (content === undefined) throw new Error(`ENOENT: ${file}`);
      return content;
    },
  };
}

const NVIDIA_CDI_SPEC = 'cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: "0"\n';

function probe(api: DockerEngineApi, hostFiles: HostFiles = files({}), timeoutMs = 1_000): DockerProbe {
  return new DockerProbe(api, { socketPath: '/var/run/docker.sock', timeoutMs, files: hostFiles });
}

describe('DockerProbe', () => {
  it('reads engine, API, cgroup, storage and runtimes from docker info and version', async () => {
    const info = await probe(engine(ENGINE_27_INFO)).probe();
    expect(info).toEqual({
      engineVersion: '27.3.1',
      apiVersion: '1.47',
      os: 'Ubuntu 24.04.1 LTS',
      osType: 'linux',
      architecture: 'x86_64',
      kernelVersion: '6.8.0-48-generic',
      cgroupVersion: 2,
      cgroupDriver: 'systemd',
      storageDriver: 'overlay2',
      runtimes: ['io.containerd.runc.v2', 'nvidia', 'runc'],
      defaultRuntime: 'runc',
      gpuPassthrough: {
        possible: true,
        via: ['runtime'],
        reasonCode: null,
        reason: null,
        nvidiaRuntime: true,
        nvidiaHook: null,
        cdi: { enabledInDocker: true, specDirs: ['/etc/cdi', '/var/run/cdi'], nvidiaSpecFiles: [] },
      },
      sandbox: expect.objectContaining({ setting: 'auto', runsc: false, cpuLeases: 'runc', gpuLeases: 'runc' }),
    });
  });

  it('says leases without GPUs get gVisor when the engine has a runsc runtime, and GPU leases runc', async () => {
    const withRunsc = { ...ENGINE_27_INFO, Runtimes: { runc: { path: 'runc' }, runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--network=host'] } } };
    const info = await probe(engine(withRunsc)).probe();
    expect(info.sandbox).toMatchObject({ setting: 'auto', runsc: true, runscGpu: false, cpuLeases: 'runsc', gpuLeases: 'runc', warning: null });
    expect(info.sandbox.why).toMatch(/GPU leases run under runc \(this runsc cannot pass a GPU through/);
  });

  it('warns, with the fix, when only runc is there to isolate strangers\' code', async () => {
    const info = await probe(engine({ ...ENGINE_27_INFO, Runtimes: { runc: { path: 'runc' } } })).probe();
    expect(info.sandbox).toMatchObject({ cpuLeases: 'runc', warning: expect.stringMatching(/only runc is available/), fix: expect.stringMatching(/install.sh --with-gvisor/) });
  });

  it('finds GPU passthrough through CDI when the engine reports spec dirs holding a nvidia.com/gpu spec', async () => {
    const info = await probe(
      engine({ ...ENGINE_27_INFO, Runtimes: { runc: { path: 'runc' } } }),
      files({ '/var/run/cdi': { 'nvidia.yaml': NVIDIA_CDI_SPEC, 'other.json': '{"kind":"vendor.com/fpga"}' } }),
    ).probe();
    expect(info.gpuPassthrough).toMatchObject({ possible: true, via: ['cdi'], nvidiaRuntime: false, cdi: { enabledInDocker: true, nvidiaSpecFiles: ['/var/run/cdi/nvidia.yaml'] } });
  });

  it('reports no passthrough, naming the missing nvidia runtime, on an engine without it or CDI', async () => {
    const info = await probe(engine({ ...ENGINE_27_INFO, Runtimes: { runc: {} }, CDISpecDirs: undefined })).probe();
    expect(info.gpuPassthrough.possible).toBe(false);
    expect(info.gpuPassthrough.reasonCode).toBe('docker-has-no-nvidia-runtime');
    expect(info.gpuPassthrough.reason).toMatch(
      /Docker has no nvidia runtime \(runtimes: runc\), no nvidia-container-runtime-hook is installed, and CDI is off in this engine.*nvidia-ctk runtime configure/,
    );
  });

  it('finds GPU passthrough through the NVIDIA hook that serves --gpus without the nvidia runtime', async () => {
    const info = await probe(engine({ ...ENGINE_27_INFO, Runtimes: { runc: {} } }), files({}, ['/usr/bin/nvidia-container-runtime-hook'])).probe();
    expect(info.gpuPassthrough).toMatchObject({ possible: true, via: ['hook'], nvidiaRuntime: false, nvidiaHook: '/usr/bin/nvidia-container-runtime-hook' });
  });

  it('says when CDI specs exist on disk but the engine has CDI off', async () => {
    const info = await probe(
      engine({ ...ENGINE_27_INFO, Runtimes: { runc: {} }, CDISpecDirs: [] }),
      files({ '/etc/cdi': { 'nvidia.yaml': NVIDIA_CDI_SPEC } }),
    ).probe();
    expect(info.gpuPassthrough).toMatchObject({ possible: false, cdi: { enabledInDocker: false, nvidiaSpecFiles: ['/etc/cdi/nvidia.yaml'] } });
    expect(info.gpuPassthrough.reason).toContain('CDI is off in this engine (though nvidia.com/gpu specs exist: /etc/cdi/nvidia.yaml)');
  });

  it('counts nvidia as the default runtime as passthrough', async () => {
    const info = await probe(engine({ ...ENGINE_27_INFO, Runtimes: undefined, DefaultRuntime: 'nvidia' })).probe();
    expect(info.gpuPassthrough.nvidiaRuntime).toBe(true);
  });

  it('leaves the cgroup version null on an engine too old to report it', async () => {
    const info = await probe(engine({ ServerVersion: '19.03.15', Driver: 'overlay2' }, { ApiVersion: '1.40' })).probe();
    expect([info.cgroupVersion, info.engineVersion, info.apiVersion, info.runtimes]).toEqual([null, '19.03.15', '1.40', []]);
  });

  it.each([
    ['ENOENT', 'DOCKER_UNREACHABLE', /no Docker socket at \/var\/run\/docker.sock/],
    ['ECONNREFUSED', 'DOCKER_UNREACHABLE', /nothing listens on the Docker socket/],
    ['EACCES', 'DOCKER_PERMISSION_DENIED', /permission denied on the Docker socket/],
  ])('reports a socket error %s as %s', async (errno, code, message) => {
    const refusing: DockerEngineApi = {
      info: async () => Promise.reject(Object.assign(new Error(`connect ${errno} /var/run/docker.sock`), { code: errno })),
      version: async () => ({}),
    };
    await expect(probe(refusing).probe()).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
  });

  it('gives up on an engine that never answers with DOCKER_TIMEOUT, and aborts the request', async () => {
    let aborted = false;
    const silent: DockerEngineApi = {
      info: (options) =>
        new Promise(() => {
          options?.abortSignal?.addEventListener('abort', () => (aborted = true));
        }),
      version: () => new Promise(() => undefined),
    };
    await expect(probe(silent, files({}), 100).probe()).rejects.toMatchObject({ code: 'DOCKER_TIMEOUT', message: expect.stringContaining('within 100 ms') });
    expect(aborted).toBe(true);
  });
});

describe('findNvidiaCdiSpecs', () => {
  it('finds YAML and JSON specs of kind nvidia.com/gpu and skips missing dirs and other kinds', async () => {
    const found = await findNvidiaCdiSpecs(
      ['/etc/cdi', '/var/run/cdi', '/nowhere'],
      files({
        '/etc/cdi': { 'nvidia.json': '{\n  "cdiVersion": "0.6.0",\n  "kind": "nvidia.com/gpu",\n  "devices": []\n}', 'README': 'kind: nvidia.com/gpu' },
        '/var/run/cdi': { 'amd.yaml': 'kind: amd.com/gpu\n', 'compact.json': '{"cdiVersion":"0.6.0","kind":"nvidia.com/gpu","devices":[]}', 'nvidia-mig.yml': "kind: 'nvidia.com/gpu'\n" },
      }),
    );
    expect(found).toEqual(['/etc/cdi/nvidia.json', '/var/run/cdi/compact.json', '/var/run/cdi/nvidia-mig.yml']);
  });
});
