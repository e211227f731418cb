import type { Command } from 'commander';
import { z } from 'zod';
import { getAddress, toBeHex } from 'ethers';
import { publicApiUrl } from '../api';
import { ProviderError, describeError, isProviderError } from '../errors';
import type { DisputeOutcome } from '../tenant';
import { CliExit, commandContext, type CliIo } from './context';
import { amount } from './operator-format';
import { parseFlags } from './flags';
import { openTenantSession } from './tenant-session';

const optionsSchema = z.object({
  json: z.boolean().optional(),
  tenantKeyFile: z.string().min(1).optional(),
  rpcUrl: z.url().optional(),
  apiUrl: z.url().optional(),
});

/** A lease id is a uint256: (provider << 96) | quote nonce, written in decimal. */
const leaseIdSchema = z
  .string()
  .regex(/^\d{1,78}$/, 'expected a lease id: a whole number as `provider leases` prints it')
  .transform(BigInt)
  .refine((id) => id < 2n ** 256n, 'a lease id fits in 256 bits');

/**
 * `provider dispute <leaseId>`: as the lease's tenant, fetch its usage view from the provider's
 * API, check it as a tenant does (TenantClient.dispute) and file on-chain the dispute its evidence
 * supports. Exit 0 when there is nothing to dispute or the dispute was filed; 1 with the error's
 * code and fix otherwise (a view refused without evidence the chain takes, a claim not open to
 * dispute, the API or the chain unreachable); 2 for bad arguments.
 */
export function registerDisputeCommand(program: Command, io: CliIo): void {
  program
    .command('dispute')
    .description('as a lease\'s tenant, check its usage and checkpoints and file on-chain the dispute the evidence supports')
    .argument('<leaseId>', 'the lease, as `provider leases` prints it')
    .option('--tenant-key-file <file>', 'file holding the private key of the lease\'s tenant (required off the devnet; default there: the dev tenant)')
    .option('--rpc-url <url>', 'JSON-RPC endpoint the tenant uses (default: network.rpcUrl)')
    .option('--api-url <url>', 'the provider\'s API (default: the daemon on this machine)')
    .option('--json', 'JSON: {outcome: nothing | disputed | error, ...}')
    .action(async (rawLeaseId: string, raw: Record<string, unknown>, command: Command) => {
      const ctx = commandContext(io, command);
      const { config } = ctx.loaded;
      const options = parseFlags(optionsSchema, raw, 'dispute');
      const leaseId = parseLeaseId(rawLeaseId);
      const apiUrl = options.apiUrl ?? publicApiUrl(config);
      // A lease id is (provider << 96) | nonce: the provider whose registered certificate is pinned.
      const provider = async (): Promise<string> => getAddress(toBeHex(leaseId >> 96n, 20));
      let outcome: DisputeOutcome;
      try {
        const { tenant, rpc } = await openTenantSession(config, options, { apiUrl, clock: io.clock, keyNeeded: 'a dispute is sent by the lease\'s tenant', provider, log: ctx.log });
        try {
          outcome = await tenant.dispute(leaseId);
        } finally {
          rpc.destroy();
        }
      } catch (err) {
        if (isProviderError(err, 'USAGE')) throw err;
        const failure = explain(err, apiUrl, options.apiUrl === undefined);
        if (options.json) ctx.print(JSON.stringify({ outcome: 'error', leaseId: leaseId.toString(), ...failure }, null, 2));
        else io.stderr.write(`provider dispute: ${failure.code}: ${failure.message}\n${failure.fix ? `  fix: ${failure.fix}\n` : ''}`);
        throw new CliExit(1);
      }
      if (options.json) ctx.print(JSON.stringify(disputeJson(leaseId, outcome), null, 2));
      else io.stdout.write(formatDispute(leaseId, outcome));
    });
}

export function formatDispute(leaseId: bigint, outcome: DisputeOutcome): string {
  if (!outcome.filed) {
    return `nothing to dispute: ${outcome.records} records, ${amount(outcome.total, null)} verified\n  lease ${leaseId}, checkpoint #${outcome.checkpoint}: its total is its records' total, and it may be countersigned\n`;
  }
  return `disputed lease ${leaseId}: ${outcome.fault} (evidence: ${outcome.evidence}, against checkpoint #${outcome.checkpoint})\n  transaction ${outcome.txHash}\n`;
}

function disputeJson(leaseId: bigint, outcome: DisputeOutcome): Record<string, unknown> {
  if (!outcome.filed) return { outcome: 'nothing', leaseId: leaseId.toString(), checkpoint: outcome.checkpoint, records: outcome.records, total: outcome.total.toString() };
  return { outcome: 'disputed', leaseId: leaseId.toString(), checkpoint: outcome.checkpoint, fault: outcome.fault, evidence: outcome.evidence, txHash: outcome.txHash };
}

/** The error as code, message and fix; the local daemon not answering is said as such. */
function explain(err: unknown, apiUrl: string, local: boolean): { code: string; message: string; fix: string | null } {
  if (!isProviderError(err)) return { code: 'INTERNAL', message: describeError(err), fix: null };
  if (err.code === 'PROVIDER_UNREACHABLE' && local) {
    return {
      code: err.code,
      message: `nothing answers at ${apiUrl} (${err.message})`,
      fix: 'the daemon is not running here: start it with `provider start`, or pass --api-url <url> of the lease\'s provider',
    };
  }
  return { code: err.code, message: err.message, fix: err.fix ?? null };
}

function parseLeaseId(raw: string): bigint {
  const parsed = leaseIdSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  throw new ProviderError('USAGE', `lease id ${raw}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, { input: raw, fix: 'pass the lease id `provider leases` prints, e.g. provider dispute 1' });
}
