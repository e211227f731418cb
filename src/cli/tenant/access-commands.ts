import type { Command } from 'commander';
import { z } from 'zod';
import { describeError } from '../../errors';
import { forwardPort, listAccessTokens, mintAccessToken, revokeAccessToken, runShell, type LeaseEndpoint, type LocalTerminal } from '../../tenant';
import { CliExit, type CliIo } from '../context';
import { parseFlags } from '../flags';
import { apiUrlOption } from './lease-commands';
import { leaseClient, parseLeaseId, toJson, withTenantEnv, type TenantEnv } from './session';

const portSchema = z.coerce.number().int().min(1).max(65_535);

/** The lease's provider as the access clients reach it: signed as the tenant, through the client's pinned transport. */
async function leaseEndpoint(env: TenantEnv, leaseId: bigint, apiUrl: string | undefined): Promise<LeaseEndpoint> {
  const { client, apiUrl: url } = await leaseClient(env, leaseId, apiUrl);
  return { apiUrl: url, signer: env.signer, chainId: env.chain.chainId, transport: client.transport, timeoutMs: env.flags.timeout * 1000 };
}

/** `shell`, `port-forward` and `token`: reaching what a lease runs, through its provider's API port. */
export function registerAccessCommands(group: Command, io: CliIo): void {
  group
    .command('shell')
    .description('a shell (or one command) inside the lease\'s container; exits with the command\'s exit code')
    .argument('<lease>', 'the lease id')
    .argument('[command...]', 'run this instead of the image\'s /bin/sh (put it after --)')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, command: string[], raw: Record<string, unknown>, cmd: Command) => {
      const options = parseFlags(apiUrlOption, raw, 'tenant shell');
      const leaseId = parseLeaseId(rawId);
      const code = await withTenantEnv(io, cmd, async (env) => {
        const endpoint = await leaseEndpoint(env, leaseId, options.apiUrl);
        const local = { stdin: io.stdin ?? process.stdin, stdout: io.stdout, stderr: io.stderr } as unknown as LocalTerminal;
        return runShell(endpoint, leaseId, local, command.length > 0 ? { command } : {});
      });
      if (code !== 0) throw new CliExit(code);
    });

  const forwardSchema = apiUrlOption.extend({ address: z.string().min(1).default('127.0.0.1'), token: z.string().min(1).optional() });
  group
    .command('port-forward')
    .description('a local port that leads to a port the lease publishes (TCP tunnelled over the provider\'s API port); runs until Ctrl-C')
    .argument('<lease>', 'the lease id')
    .argument('<port>', 'the container port, as the manifest\'s ports list it')
    .argument('[local]', 'local port (default: any free one)')
    .option('--address <host>', 'local address to listen on (default 127.0.0.1)')
    .option('--token <token>', 'a lease access token instead of the tenant\'s key')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, rawPort: string, rawLocal: string | undefined, raw: Record<string, unknown>, cmd: Command) => {
      const options = parseFlags(forwardSchema, raw, 'tenant port-forward');
      const leaseId = parseLeaseId(rawId);
      const port = parseFlags(z.object({ port: portSchema }), { port: rawPort }, 'tenant port-forward').port;
      const localPort = rawLocal === undefined ? 0 : parseFlags(z.object({ local: portSchema }), { local: rawLocal }, 'tenant port-forward').local;
      await withTenantEnv(io, cmd, async (env) => {
        const endpoint = await leaseEndpoint(env, leaseId, options.apiUrl);
        const forward = await forwardPort(endpoint, leaseId, port, {
          host: options.address,
          localPort,
          ...(options.token ? { token: options.token } : {}),
          onError: (err) => io.stderr.write(`a connection was not tunnelled: ${describeError(err)}\n`),
        });
        const local = `${forward.address.address}:${forward.address.port}`;
        if (env.flags.json) env.ctx.print(JSON.stringify({ leaseId: leaseId.toString(), port, local }));
        else env.ctx.print(`forwarding ${local} -> lease ${leaseId} port ${port} (Ctrl-C to stop)`);
        await new Promise<void>((resolve) => {
          const stop = (): void => resolve();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        await forward.close();
      });
    });

  const token = group.command('token').description('bearer tokens that open a lease\'s ports to whoever holds them (a browser, a colleague): mint, list, revoke');
  const mintSchema = apiUrlOption.extend({ ttl: z.coerce.number().int().min(60).default(86_400), port: portSchema.optional(), label: z.string().min(1).max(64).optional() });
  token
    .command('mint')
    .description('a new token, printed once with the URL that opens the port in a browser')
    .argument('<lease>', 'the lease id')
    .option('--ttl <seconds>', 'how long it opens the ports (default 86400; the provider caps it)')
    .option('--port <port>', 'only this container port (default: every port the lease publishes)')
    .option('--label <text>', 'a name for it in `token list`')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, raw: Record<string, unknown>, cmd: Command) => {
      const options = parseFlags(mintSchema, raw, 'tenant token mint');
      const leaseId = parseLeaseId(rawId);
      await withTenantEnv(io, cmd, async (env) => {
        const endpoint = await leaseEndpoint(env, leaseId, options.apiUrl);
        const minted = await mintAccessToken(endpoint, leaseId, { ttlSeconds: options.ttl, ...(options.port ? { port: options.port } : {}), ...(options.label ? { label: options.label } : {}) });
        const url = minted.port === null ? null : `${endpoint.apiUrl.replace(/\/$/, '')}/v1/leases/${leaseId}/ports/${minted.port}/?access_token=${minted.token}`;
        if (env.flags.json) {
          env.ctx.print(toJson({ ...minted, url }));
          return;
        }
        env.ctx.print(`token     ${minted.token}`);
        env.ctx.print(`id        ${minted.tokenId} (revoke: provider tenant token revoke ${leaseId} ${minted.tokenId})`);
        env.ctx.print(`expires   ${new Date(minted.expiresAt * 1000).toISOString()}`);
        if (url) env.ctx.print(`open      ${url}`);
      });
    });
  token
    .command('list')
    .description('the lease\'s live tokens (never the tokens themselves: only their ids)')
    .argument('<lease>', 'the lease id')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, raw: Record<string, unknown>, cmd: Command) => {
      const options = parseFlags(apiUrlOption, raw, 'tenant token list');
      const leaseId = parseLeaseId(rawId);
      await withTenantEnv(io, cmd, async (env) => {
        const tokens = await listAccessTokens(await leaseEndpoint(env, leaseId, options.apiUrl), leaseId);
        if (env.flags.json) {
          env.ctx.print(toJson({ tokens }));
          return;
        }
        if (tokens.length === 0) env.ctx.print('no live tokens');
        for (const t of tokens) env.ctx.print(`${t.tokenId}  port ${t.port ?? 'any'}  expires ${new Date(t.expiresAt * 1000).toISOString()}${t.label ? `  ${t.label}` : ''}`);
      });
    });
  token
    .command('revoke')
    .description('the token opens nothing from now on')
    .argument('<lease>', 'the lease id')
    .argument('<tokenId>', 'as `token mint` or `token list` printed it')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, tokenId: string, raw: Record<string, unknown>, cmd: Command) => {
      const options = parseFlags(apiUrlOption, raw, 'tenant token revoke');
      const leaseId = parseLeaseId(rawId);
      await withTenantEnv(io, cmd, async (env) => {
        await revokeAccessToken(await leaseEndpoint(env, leaseId, options.apiUrl), leaseId, tokenId);
        env.ctx.print(env.flags.json ? JSON.stringify({ revoked: tokenId }) : `revoked ${tokenId}`);
      });
    });
}
