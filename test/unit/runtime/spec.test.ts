import { buildContainerSpec, buildDeviceRequests, KEPT_CAPABILITIES } from '../../../src/runtime';
import { isProviderError } from '../../../src/errors';
import { GPU_A, GPU_B, MIG_A, aConfig, aManifest, anAllocation } from '../../fixtures/runtime';

const MiB = 2 ** 20;

describe('container spec', () => {
  const config = aConfig();
  const spec = buildContainerSpec({ manifest: aManifest(), allocation: anAllocation(), image: 'sha256:abc', settings: config });
  const host = spec.HostConfig;

  test.each([
    ['NanoCpus from cpuMillis', host.NanoCpus, 500_000_000],
    ['Memory from the allocation', host.Memory, 128 * MiB],
    ['MemorySwap equal to Memory (no swap)', host.MemorySwap, 128 * MiB],
    ['PidsLimit from config', host.PidsLimit, 1024],
    ['ShmSize default', host.ShmSize, 64 * MiB],
    ['an init process', host.Init, true],
    ['never privileged', host.Privileged, false],
    ['no-new-privileges and the default seccomp profile', host.SecurityOpt, ['no-new-privileges:true']],
    ['all capabilities dropped', host.CapDrop, ['ALL']],
    ['only the documented capabilities added', host.CapAdd, [...KEPT_CAPABILITIES]],
    ['the lease network', host.NetworkMode, 'provider-lease-lease-1'],
    ['private IPC', host.IpcMode, 'private'],
    ['no host PID namespace', host.PidMode, ''],
    ['private cgroup namespace', host.CgroupnsMode, 'private'],
    ['no host mounts', host.Binds, []],
    ['no volumes or mounts', host.Mounts, []],
    ['no devices', host.Devices, []],
    ['no device requests without GPUs', host.DeviceRequests, []],
    ['no restart by the engine', host.RestartPolicy, { Name: 'no', MaximumRetryCount: 0 }],
    ['nofile ulimit', host.Ulimits, [{ Name: 'nofile', Soft: 65536, Hard: 65536 }]],
    ['json-file log rotation', host.LogConfig, { Type: 'json-file', Config: { 'max-size': String(10 * MiB), 'max-file': '3' } }],
    ['writable root fs by default', host.ReadonlyRootfs, false],
    ['StopTimeout from config', spec.StopTimeout, 10],
    ['a deterministic name', spec.name, 'provider-lease-lease-1'],
    ['the image id it was given', spec.Image, 'sha256:abc'],
  ])('sets %s', (_what, actual, expected) => {
    expect(actual).toEqual(expected);
  });

  test('labels the container as ours and with its lease', () => {
    expect(spec.Labels).toMatchObject({ 'provider.managed': 'true', 'provider.lease-id': 'lease-1', 'provider.image': 'provider-test/busybox:latest' });
  });

  test('hides every GPU from a lease without GPUs, even under a default nvidia runtime', () => {
    expect(spec.Env).toContain('NVIDIA_VISIBLE_DEVICES=void');
  });

  test('gives a read-only root fs a tmpfs scratch when configured', () => {
    const ro = buildContainerSpec({ manifest: aManifest(), allocation: anAllocation(), image: 'x', settings: aConfig({ runtime: { readOnlyRootfs: true, tmpfsBytes: '32MiB' } }) });
    expect(ro.HostConfig.ReadonlyRootfs).toBe(true);
    expect(ro.HostConfig.Tmpfs).toEqual({ '/tmp': `rw,nosuid,nodev,size=${32 * MiB}`, '/run': `rw,nosuid,nodev,size=${32 * MiB}` });
  });

  test('points the container at the configured DNS servers, and leaves the engine default otherwise', () => {
    expect(host.Dns).toBeUndefined();
    const s = buildContainerSpec({ manifest: aManifest(), allocation: anAllocation(), image: 'x', settings: aConfig({ runtime: { egress: { dnsServers: ['1.1.1.1'] } } }) });
    expect(s.HostConfig.Dns).toEqual(['1.1.1.1']);
  });

  test('publishes manifest ports on the allocated host ports', () => {
    const s = buildContainerSpec({
      manifest: aManifest({ ports: [{ containerPort: 80 }, { containerPort: 53, protocol: 'udp' }] }),
      allocation: anAllocation({ hostPorts: [30001, 30002] }),
      image: 'x',
      settings: config,
    });
    expect(s.HostConfig.PortBindings).toEqual({ '80/tcp': [{ HostIp: '', HostPort: '30001' }], '53/udp': [{ HostIp: '', HostPort: '30002' }] });
    expect(s.ExposedPorts).toEqual({ '80/tcp': {}, '53/udp': {} });
    expect(s.HostConfig.PublishAllPorts).toBe(false);
  });

  test('refuses a host port outside the configured range', () => {
    expect(() =>
      buildContainerSpec({ manifest: aManifest({ ports: [{ containerPort: 80 }] }), allocation: anAllocation({ hostPorts: [22] }), image: 'x', settings: config }),
    ).toThrow(/outside runtime.portRange/);
  });

  test('passes command, args, env and shm size through', () => {
    const s = buildContainerSpec({
      manifest: aManifest({ command: ['/bin/sh', '-c'], args: ['echo hi'], env: { A: '1' }, resources: { cpuMillis: 100, memoryBytes: 64 * MiB, shmBytes: 8 * MiB } }),
      allocation: anAllocation(),
      image: 'x',
      settings: config,
    });
    expect(s.Entrypoint).toEqual(['/bin/sh', '-c']);
    expect(s.Cmd).toEqual(['echo hi']);
    expect(s.Env).toContain('A=1');
    expect(s.HostConfig.ShmSize).toBe(8 * MiB);
  });

  test('refuses an allocation whose GPU count differs from the manifest', () => {
    try {
      buildContainerSpec({ manifest: aManifest({ gpus: 2 }), allocation: anAllocation({ gpuUuids: [GPU_A] }), image: 'x', settings: config });
      throw new Error('no error');
    } catch (err) {
      expect(isProviderError(err, 'ALLOCATION_INVALID')).toBe(true);
    }
  });
});

describe('GPU device requests', () => {
  test('asks the nvidia driver for exactly the allocated GPU UUIDs, never a count', () => {
    expect(buildDeviceRequests([GPU_A, GPU_B], 'runtime')).toEqual([{ Driver: 'nvidia', DeviceIDs: [GPU_A, GPU_B], Capabilities: [['gpu']] }]);
  });

  test('passes MIG device UUIDs through unchanged', () => {
    expect(buildDeviceRequests([MIG_A], 'runtime')).toEqual([{ Driver: 'nvidia', DeviceIDs: [MIG_A], Capabilities: [['gpu']] }]);
  });

  test('names CDI devices in cdi mode', () => {
    expect(buildDeviceRequests([GPU_A, MIG_A], 'cdi')).toEqual([
      { Driver: 'cdi', DeviceIDs: [`nvidia.com/gpu=${GPU_A}`, `nvidia.com/gpu=${MIG_A}`], Capabilities: [['cdi']] },
    ]);
  });

  test('never sets Count', () => {
    for (const mode of ['runtime', 'cdi'] as const) for (const r of buildDeviceRequests([GPU_A], mode)) expect(r).not.toHaveProperty('Count');
  });

  test('refuses something that is not a GPU UUID', () => {
    expect(() => buildDeviceRequests(['all'], 'runtime')).toThrow(/not a GPU or MIG device UUID/);
    expect(() => buildDeviceRequests(['0'], 'runtime')).toThrow(/not a GPU or MIG device UUID/);
  });

  test('a GPU lease container sees its GPUs and the configured driver capabilities', () => {
    const s = buildContainerSpec({
      manifest: aManifest({ gpus: 2 }),
      allocation: anAllocation({ gpuUuids: [GPU_A, MIG_A] }),
      image: 'x',
      settings: aConfig({ gpu: { driverCapabilities: 'compute,utility,video' } }),
    });
    expect(s.HostConfig.DeviceRequests).toEqual([{ Driver: 'nvidia', DeviceIDs: [GPU_A, MIG_A], Capabilities: [['gpu']] }]);
    expect(s.Env).toEqual(expect.arrayContaining([`NVIDIA_VISIBLE_DEVICES=${GPU_A},${MIG_A}`, 'NVIDIA_DRIVER_CAPABILITIES=compute,utility,video']));
    expect(s.Labels?.['provider.gpu-uuids']).toBe(`${GPU_A},${MIG_A}`);
  });

  test('in cdi mode the legacy hook is told void and the devices come from CDI', () => {
    const s = buildContainerSpec({ manifest: aManifest({ gpus: 1 }), allocation: anAllocation({ gpuUuids: [GPU_A] }), image: 'x', settings: aConfig({ gpu: { mode: 'cdi' } }) });
    expect(s.HostConfig.DeviceRequests).toEqual([{ Driver: 'cdi', DeviceIDs: [`nvidia.com/gpu=${GPU_A}`], Capabilities: [['cdi']] }]);
    expect(s.Env).toEqual(expect.arrayContaining(['NVIDIA_VISIBLE_DEVICES=void', 'NVIDIA_DRIVER_CAPABILITIES=compute,utility']));
  });
});
