import Docker from 'dockerode';
import type { Command } from 'commander';
import {
  CapacityDetector,
  DockerProbe,
  HostProbe,
  NvidiaSmi,
  capacitySettings,
  formatCapacityText,
  nothingDetected,
  systemInformationSource,
} from '../capacity';
import type { ProviderConfig } from '../config';
import { CliExit, commandContext, type CliIo } from './context';

/** systeminformation shells out to df and reads /proc; a hung NFS mount must not hang the command. */
const HOST_PROBE_TIMEOUT_MS = 10_000;

export function registerCapacityCommand(program: Command, io: CliIo): void {
  program
    .command('capacity')
    .description('detect CPU, memory, disk, NVIDIA GPUs and Docker, and show what can be offered')
    .option('--json', 'print the report as JSON (schemaVersion 1), for scripts')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = commandContext(io, command);
      const detector = buildCapacityDetector(ctx.loaded.config, io);
      const report = await detector.detect();
      for (const missing of report.notDetected) ctx.log.debug({ part: missing.part, code: missing.code }, missing.reason);
      if (options.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else io.stdout.write(formatCapacityText(report));
      // Partial answers are normal (a CPU-only host has no nvidia-smi): only total blindness fails.
      if (nothingDetected(report)) throw new CliExit(1);
    });
}

/** Wires the probes from config and the CLI's environment. */
export function buildCapacityDetector(config: ProviderConfig, io: CliIo): CapacityDetector {
  // The config loader leaves PROVIDER_NVIDIA_SMI alone (it is not a config key); it is honoured
  // here, after gpu.nvidiaSmiPath from the file or --set, before a PATH lookup.
  const nvidiaSmiPath = config.gpu.nvidiaSmiPath ?? (io.env.PROVIDER_NVIDIA_SMI || undefined) ?? 'nvidia-smi';
  const nvidiaSmi = new NvidiaSmi({ exec: io.exec, path: nvidiaSmiPath, timeoutMs: config.gpu.nvidiaSmiTimeoutMs, env: io.env });
  const docker = new DockerProbe(new Docker({ socketPath: config.docker.socketPath }), {
    socketPath: config.docker.socketPath,
    timeoutMs: config.docker.requestTimeoutMs,
  });
  const host = new HostProbe({ source: systemInformationSource(), timeoutMs: HOST_PROBE_TIMEOUT_MS });
  return new CapacityDetector({ host, gpus: nvidiaSmi, docker, clock: io.clock }, capacitySettings(config));
}
