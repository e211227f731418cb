import type { Command } from 'commander';
import { createCapacityDetector } from '../capacity';
import { createRpcProvider } from '../chain';
import { formatDoctorText, runDoctor } from '../doctor';
import { createDockerClient } from '../runtime';
import { CliExit, commandContext, type CliIo } from './context';
import { OperatorClient } from './local-api';
import { NatLibraryDiscovery } from '../reachability';
import { isProviderError } from '../errors';
import { networkInterfaces } from 'node:os';

export function registerDoctorCommand(program: Command, io: CliIo): void {
  program
    .command('doctor')
    .description('preflight checks with pass/warn/fail, the detail and the fix; exit 1 on any failure')
    .option('--json', 'machine-readable report')
    .option('--gpu-test-image <image>', 'image the GPU passthrough test runs nvidia-smi -L in (needs glibc)', 'debian:bookworm-slim')
    .action(async (options: { json?: boolean; gpuTestImage: string }, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const capacity = await createCapacityDetector(config, { exec: io.exec, env: io.env, clock: io.clock }).detect();
      const rpc = config.network ? createRpcProvider(config.network.rpcUrl, { chainId: config.network.chainId }) : undefined;
      try {
        const results = await runDoctor({
          config,
          capacity,
          docker: createDockerClient(config),
          env: io.env,
          clock: io.clock,
          gpuTestImage: options.gpuTestImage,
          rpc,
          fetch,
          timeoutMs: config.docker.requestTimeoutMs,
          reachability: {
            daemon: () => OperatorClient.forConfig(config).status().then((s) => s.reachability, (err: unknown) => (isProviderError(err, 'DAEMON_NOT_RUNNING') ? undefined : Promise.reject(err))),
            interfaces: networkInterfaces,
            discovery: new NatLibraryDiscovery(),
          },
        });
        const ok = results.every((r) => r.status !== 'fail');
        if (options.json) ctx.print(JSON.stringify({ ok, checks: results }, null, 2));
        else io.stdout.write(formatDoctorText(results));
        if (!ok) throw new CliExit(1);
      } finally {
        rpc?.destroy();
      }
    });
}
