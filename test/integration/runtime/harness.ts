import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { Firewall, ImageService, LeaseRuntime, containerName, networkName } from '../../../src/runtime';
import type { LeaseAllocation, Manifest } from '../../../src/runtime';
import { silentLogger, type Logger } from '../../../src/log';
import { execFileAsync } from '../../../src/util/exec';
import { systemClock } from '../../../src/util/clock';
import type { ProviderConfig } from '../../../src/config';
import { aConfig } from '../../fixtures/runtime';
import { until as untilShared } from '../../support/until';

export const TEST_IMAGE = 'provider-test/busybox:latest';
export const sh = promisify(execFile);

let harnesses = 0;

/** A runtime against the real engine, with lease ids unique to this run and cleanup of all of them. */
export class RuntimeHarness {
  readonly docker = new Docker({ socketPath: '/var/run/docker.sock' });
  readonly config: ProviderConfig;
  readonly firewall: Firewall;
  readonly images: ImageService;
  readonly runtime: LeaseRuntime;
  private readonly leases = new Set<string>();
  private counter = 0;
  private readonly prefix: string;

  /** This harness's daemon instance: a runtime of its own, as another daemon on the same engine would be. */
  readonly instanceId: string;

  constructor(overrides: { runtime?: object; gpu?: object; admission?: object } = {}, log: Logger = silentLogger(), options: { instanceId?: string } = {}) {
    this.config = aConfig(overrides);
    harnesses += 1;
    this.instanceId = options.instanceId ?? `t${(process.pid % 1_679_616).toString(36)}${harnesses}`;
    this.firewall = new Firewall(execFileAsync, log, { instanceId: this.instanceId });
    this.images = new ImageService(this.docker, this.config, log, systemClock);
    this.runtime = new LeaseRuntime({ docker: this.docker, firewall: this.firewall, images: this.images, config: this.config, log, clock: systemClock });
    this.prefix = `it${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
  }

  leaseId(name: string): string {
    this.counter += 1;
    const id = `${this.prefix}-${name}-${this.counter}`;
    this.leases.add(id);
    return id;
  }

  allocation(leaseId: string, manifest: Manifest, extra: Partial<LeaseAllocation> = {}): LeaseAllocation {
    return { leaseId, cpuMillis: manifest.resources.cpuMillis, memoryBytes: manifest.resources.memoryBytes, gpuUuids: [], hostPorts: [], ...extra };
  }

  async imageId(): Promise<string> {
    return (await this.docker.getImage(TEST_IMAGE).inspect()).Id;
  }

  /** Runs a command in the lease's container; stdout, with a bound on time. */
  async execIn(leaseId: string, cmd: string, timeoutMs = 15_000): Promise<{ stdout: string; code: number }> {
    try {
      const { stdout } = await sh('docker', ['exec', containerName(leaseId), 'sh', '-c', cmd], { timeout: timeoutMs });
      return { stdout, code: 0 };
    } catch (err) {
      const e = err as { stdout?: string; code?: number };
      return { stdout: e.stdout ?? '', code: typeof e.code === 'number' ? e.code : -1 };
    }
  }

  async cleanup(): Promise<void> {
    for (const id of this.leases) {
      await this.runtime.remove(id).catch(async () => {
        await sh('docker', ['rm', '-f', containerName(id)]).catch(() => undefined);
        await sh('docker', ['network', 'rm', networkName(id)]).catch(() => undefined);
        await this.firewall.remove(id).catch(() => undefined);
      });
    }
  }
}

/** The shared poll with this harness's pace: engine state changes land within seconds. */
export function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 200): Promise<T> {
  return untilShared(what, probe, timeoutMs, everyMs);
}
