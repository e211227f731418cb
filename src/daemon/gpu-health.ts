import type { GpuHealthStatusView, GpuModelOffer } from '../api';
import { GpuHealthMonitor, NvidiaSmi, gpuCatalogue, type AllocationLedger, type CapacityReport } from '../capacity';
import type { ProviderConfig } from '../config';
import { describeError } from '../errors';
import type { LeaseEngine } from '../leases';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import type { Exec } from '../util/exec';
import { withTimeout } from '../util/with-timeout';
import type { PassthroughVerdict } from '../doctor';
import type { LeaseBackend } from '../runtime';

/** How long the kernel log read may take (dmesg prints the ring buffer: milliseconds). */
const KERNEL_LOG_TIMEOUT_MS = 10_000;

export interface GpuHealthService {
  monitor: GpuHealthMonitor | undefined;
  catalogue(): GpuModelOffer[];
  health(): GpuHealthStatusView[];
  stop(): Promise<void>;
}

/**
 * The GPU health monitor of a running daemon: watches the GPUs the start-up report found, keeps
 * the ledger's withdrawn set in step with it, and tells the engine about leases on a bad GPU. Its
 * first round runs before this returns, so a GPU already bad at start is never offered.
 */
export async function startGpuHealth(options: {
  config: ProviderConfig;
  report: CapacityReport;
  ledger: AllocationLedger;
  engine: LeaseEngine;
  exec: Exec;
  env: NodeJS.ProcessEnv;
  clock: Clock;
  log: Logger;
  /** The throwaway-container passthrough test (doctor's), with the GPU a lease would get. */
  passthrough: (uuid: string, signal: AbortSignal) => Promise<PassthroughVerdict>;
  /** Docker events: the engine coming back after being lost (a dockerd restart). */
  backend: Pick<LeaseBackend, 'watch'>;
}): Promise<GpuHealthService> {
  const { config, report, ledger, engine, exec, env, clock } = options;
  const log = options.log.child({ component: 'gpu-health' });
  const devices = report.gpus.ok ? report.gpus.devices : [];
  if (devices.length === 0) {
    return { monitor: undefined, catalogue: () => gpuCatalogue(report, new Map()), health: () => [], stop: async () => undefined };
  }
  const nvidiaSmi = new NvidiaSmi({ exec, path: config.gpu.nvidiaSmiPath ?? 'nvidia-smi', timeoutMs: config.gpu.nvidiaSmiTimeoutMs, env });
  const dmesg = config.gpu.health.dmesgPath;
  const monitor: GpuHealthMonitor = new GpuHealthMonitor({
    gpus: devices.map((gpu) => ({ index: gpu.index, uuid: gpu.uuid, model: gpu.model, busId: gpu.busId })),
    readXml: (signal) => nvidiaSmi.readXml(signal),
    readKernelLog:
      dmesg === null
        ? undefined
        : async (signal) =>
            (await withTimeout(dmesg, KERNEL_LOG_TIMEOUT_MS, (inner) => exec(dmesg, [], { timeoutMs: KERNEL_LOG_TIMEOUT_MS, signal: inner, env, maxBufferBytes: 16 * 1024 * 1024 }), signal)).stdout,
    rules: () => config.gpu.health,
    clock,
    log,
    onWithdrawn: (withdrawn) => {
      for (const holder of ledger.withdrawGpus(withdrawn)) {
        log.warn({ holder }, 'a quote held a GPU that went unhealthy: its hold is dropped, and a lease opened with it is refused');
      }
      log.info({ withdrawn: Object.fromEntries(withdrawn) }, `GPUs off sale: ${withdrawn.size}`);
    },
    onLeases: (gpuUuid, detail, at) => engine.gpuUnhealthy(gpuUuid, detail, at),
    onDriverChanged: (from, to) => {
      log.warn({ from, to }, 'the NVIDIA driver version changed: checking GPU passthrough again');
      void verify('driver-changed');
    },
  });
  const controller = new AbortController();
  const sample = report.allocatable.gpus[0]?.uuid;
  let checking: Promise<void> | undefined;
  // A check asked for while one runs (a driver change seen by the round that check started) runs
  // after it: skipping it would leave the previous verdict standing.
  let again: string | undefined;
  const verify = (why: string): Promise<void> => {
    if (!sample) return Promise.resolve();
    if (checking) {
      again = why;
      return checking;
    }
    checking = (async () => {
      try {
        const verdict = await options.passthrough(sample, controller.signal);
        if (verdict.ok) {
          log.info({ why }, `GPU passthrough works: ${verdict.detail}`);
          await monitor.setPassthroughFailure(null, controller.signal);
        } else if (verdict.gpusBroken) {
          log.error({ why, fix: verdict.fix }, `GPU passthrough is broken, every GPU is off sale: ${verdict.detail}`);
          await monitor.setPassthroughFailure(verdict.detail, controller.signal);
        } else {
          log.warn({ why, fix: verdict.fix }, `GPU passthrough could not be checked: ${verdict.detail}`);
        }
      } catch (err) {
        if (!controller.signal.aborted) log.warn({ why, err: describeError(err) }, 'GPU passthrough check failed to run');
      } finally {
        checking = undefined;
        const next = again;
        again = undefined;
        if (next !== undefined && !controller.signal.aborted) void verify(next);
      }
    })();
    return checking;
  };
  await monitor.check(controller.signal).catch((err: unknown) => log.warn({ err: describeError(err) }, 'first GPU health round failed'));
  await verify('start');
  const loop = Promise.all([
    (async () => {
      await clock.sleep(config.gpu.health.intervalSeconds * 1000, controller.signal).catch(() => undefined);
      await monitor.run(controller.signal);
    })(),
    (async () => {
      const everyMs = config.gpu.passthroughCheckIntervalHours * 3_600_000;
      while (everyMs > 0 && !controller.signal.aborted) {
        await clock.sleep(everyMs, controller.signal).catch(() => undefined);
        if (!controller.signal.aborted) await verify('interval');
      }
    })(),
    options.backend
      .watch(
        (event) => {
          if (event.kind === 'back') void verify('docker-restarted');
        },
        { signal: controller.signal },
      )
      .catch(() => undefined),
  ]);
  return {
    monitor,
    catalogue: () => gpuCatalogue(report, monitor.withdrawn()),
    health: () =>
      monitor.views().map((view) => ({
        index: view.index,
        uuid: view.uuid,
        model: view.model,
        status: view.status,
        reason: view.reason,
        since: Math.floor(view.since / 1000),
        backOnSaleAt: view.backOnSaleAt === null ? null : Math.floor(view.backOnSaleAt / 1000),
        temperatureCelsius: view.temperatureCelsius,
        xidErrors: view.xidErrors,
      })),
    stop: async () => {
      controller.abort();
      await loop;
      await checking;
    },
  };
}
