import type { Command } from 'commander';
import { createCapacityDetector } from '../capacity';
import { createRpcProvider } from '../chain';
import { formatDoctorText, runDoctor, type RegistrationSource } from '../doctor';
import { createDockerClient } from '../runtime';
import { CliExit, commandContext, type CliIo } from './context';
import { OperatorClient, daemonMarketplace } from './local-api';
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
      let devnetRpc: ReturnType<typeof createRpcProvider> | undefined;
      // The devnet's chain runs inside the daemon: when it answers, its registration can be read.
      const devnetRegistration = async (): Promise<RegistrationSource | undefined> => {
        const status = await new OperatorClient({ baseUrl: OperatorClient.forConfig(config).baseUrl, timeoutMs: 2_000 }).status().catch(() => undefined);
        if (!status) return undefined;
        const host = config.devnet.host === '0.0.0.0' ? '127.0.0.1' : config.devnet.host;
        devnetRpc = createRpcProvider(`http://${host}:${config.devnet.port}`, { chainId: config.devnet.chainId });
        return { rpc: devnetRpc, marketplace: daemonMarketplace(config, ctx.log).marketplace, provider: status.provider };
      };
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
          ...(config.network ? {} : { devnetRegistration }),
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
        devnetRpc?.destroy();
      }
    });
}
