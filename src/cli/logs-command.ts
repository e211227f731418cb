import type { Command } from 'commander';
import { z } from 'zod';
import { wire, type LogEntry, type LogQuery } from '../api';
import { leaseDetail } from '../daemon';
import { ProviderError, isProviderError } from '../errors';
import { LogArchive, createDockerClient, leaseLogs, logArchiveDirFor } from '../runtime';
import { CliExit, commandContext, type CliIo, type CommandContext } from './context';
import { OperatorClient, readDaemonStore } from './local-api';
import { formatLogLine } from './operator-format';

interface LogsOptions {
  follow?: boolean;
  tail?: string;
  json?: boolean;
}

/**
 * `provider logs <lease>`: any lease's stdout (to stdout) and stderr (to stderr), through the
 * daemon; with the daemon down, straight from Docker, where the container's log still is.
 */
export function registerLogsCommand(program: Command, io: CliIo): void {
  program
    .command('logs')
    .description('print a lease\'s container logs (its stderr to stderr); from Docker when the daemon is down')
    .argument('<lease>', 'the lease id')
    .option('-f, --follow', 'keep printing until the container ends (Ctrl-C to stop)')
    .option('--tail <lines>', 'start with the last N lines')
    .option('--json', 'one JSON object per line: {stream, time, line}')
    .action(async (leaseId: string, options: LogsOptions, command: Command) => {
      const ctx = commandContext(io, command);
      const query: LogQuery = { follow: options.follow === true };
      if (options.tail !== undefined) {
        if (!/^\d{1,6}$/.test(options.tail)) throw new ProviderError('USAGE', `--tail ${options.tail}: expected a number of lines`, { fix: 'for example --tail 100' });
        query.tail = Number(options.tail);
      }
      const print = (entry: LogEntry): void => {
        if (options.json) io.stdout.write(`${JSON.stringify(z.encode(wire.logEntryWire, entry))}\n`);
        else (entry.stream === 'stderr' ? io.stderr : io.stdout).write(formatLogLine(entry));
      };
      const client = OperatorClient.forConfig(ctx.loaded.config);
      let read: { lines: number; containerGone: boolean };
      try {
        // Asked first so an unknown lease is LEASE_NOT_FOUND, and so an empty log can be explained:
        // the daemon removes a lease's container once it is settled on-chain.
        const containerGone = (await client.lease(leaseId)).chainSettled;
        let lines = 0;
        for await (const entry of client.logs(leaseId, query)) {
          lines += 1;
          print(entry);
        }
        read = { lines, containerGone };
      } catch (err) {
        if (!isProviderError(err, 'DAEMON_NOT_RUNNING')) throw err;
        read = await fromDocker(ctx, leaseId, query, print);
      }
      if (read.lines === 0 && read.containerGone) {
        io.stderr.write(`(lease ${leaseId}'s container is removed, as it is once the lease is settled, and no archive of its logs is kept: see logArchive)\n`);
        throw new CliExit(1);
      }
    });
}

async function fromDocker(ctx: CommandContext, leaseId: string, query: LogQuery, print: (entry: LogEntry) => void): Promise<{ lines: number; containerGone: boolean }> {
  const { config } = ctx.loaded;
  const { lease, runtimeId, archiveDir } = readDaemonStore(config, ctx.log, (opened) => {
    const detail = leaseDetail(opened.store, leaseId);
    return {
      lease: detail,
      runtimeId: (opened.store.leases.get(detail.leaseId) as { runtimeId: string }).runtimeId,
      archiveDir: logArchiveDirFor(config.dataDir, opened.chainId, opened.marketplace),
    };
  });
  const archive = new LogArchive({ dir: archiveDir, settings: () => config.logArchive, clock: ctx.io.clock, log: ctx.log });
  if (archive.entry(lease.leaseId)) {
    ctx.io.stderr.write(`(the daemon is not running: reading lease ${lease.leaseId}'s archived logs)\n`);
    let lines = 0;
    for await (const line of archive.read(lease.leaseId, { tail: query.tail })) {
      lines += 1;
      print({ stream: line.stream, time: line.time, line: line.text });
    }
    return { lines, containerGone: true };
  }
  ctx.io.stderr.write(`(the daemon is not running: reading ${lease.container}'s logs from Docker)\n`);
  const reader = { log: ctx.log, clock: ctx.io.clock, requestTimeoutMs: config.docker.requestTimeoutMs };
  let lines = 0;
  try {
    for await (const line of leaseLogs(createDockerClient(config), runtimeId, { follow: query.follow, tail: query.tail }, reader)) {
      lines += 1;
      print({ stream: line.stream, time: line.time, line: line.text });
    }
  } catch (err) {
    if (isProviderError(err, 'CONTAINER_NOT_FOUND')) return { lines, containerGone: true };
    throw new ProviderError(isProviderError(err) ? err.code : 'DOCKER_REQUEST_FAILED', `the daemon is down and Docker did not give the logs of ${lease.container}: ${(err as Error).message}`, {
      cause: err,
      fix: `start the daemon, or run \`docker logs ${lease.container}\``,
    });
  }
  return { lines, containerGone: false };
}
