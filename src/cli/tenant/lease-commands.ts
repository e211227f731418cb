import type { Command } from 'commander';
import { z } from 'zod';
import { wire, type LeaseView, type LogEntry } from '../../api';
import { UsageUnverifiedError, type UsageEvidence } from '../../tenant';
import { disputeCalldata } from '../../tenant';
import { CliExit, type CliIo } from '../context';
import { parseFlags } from '../flags';
import { formatLogLine } from '../operator-format';
import { leaseClient, parseLeaseId, toJson, withTenantEnv } from './session';

export const apiUrlOption = z.object({ apiUrl: z.url().optional() });

/** `logs`, `status`, `usage`, `countersign`, `close` and `leases`: the tenant's side of a lease. */
export function registerLeaseCommands(group: Command, io: CliIo): void {
  const logsSchema = apiUrlOption.extend({
    follow: z.boolean().optional(),
    tail: z.coerce.number().int().min(0).max(1_000_000).optional(),
    since: z.coerce.number().min(0).optional(),
  });
  group
    .command('logs')
    .description('the lease\'s stdout (to stdout) and stderr (to stderr); kept by the provider after the lease settles')
    .argument('<lease>', 'the lease id')
    .option('-f, --follow', 'keep printing until the container ends')
    .option('--tail <lines>', 'start with the last N lines')
    .option('--since <unixSeconds>', 'only lines at or after this time')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, raw: Record<string, unknown>, command: Command) => {
      const options = parseFlags(logsSchema, raw, 'tenant logs');
      const leaseId = parseLeaseId(rawId);
      await withTenantEnv(io, command, async (env) => {
        const { client } = await leaseClient(env, leaseId, options.apiUrl);
        const controller = new AbortController();
        const stop = (): void => controller.abort();
        process.once('SIGINT', stop);
        try {
          const query = { follow: options.follow === true, signal: controller.signal, ...(options.tail === undefined ? {} : { tail: options.tail }), ...(options.since === undefined ? {} : { since: options.since }) };
          for await (const entry of client.logs(leaseId, query)) printLog(io, entry, env.flags.json === true);
        } catch (err) {
          if (!controller.signal.aborted) throw err;
        } finally {
          process.removeListener('SIGINT', stop);
        }
      });
    });

  group
    .command('status')
    .description('the lease as its provider and the chain see it: state, container, ports, last checkpoint, escrow')
    .argument('<lease>', 'the lease id')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, raw: Record<string, unknown>, command: Command) => {
      const options = parseFlags(apiUrlOption, raw, 'tenant status');
      const leaseId = parseLeaseId(rawId);
      await withTenantEnv(io, command, async (env) => {
        const { client, apiUrl } = await leaseClient(env, leaseId, options.apiUrl);
        const [view, chain] = await Promise.all([client.lease(leaseId), client.leaseOnChain(leaseId)]);
        if (env.flags.json) {
          env.ctx.print(toJson({ lease: z.encode(wire.leaseViewWire, view), chain: { end: chain.end, paid: chain.paid, pending: chain.pending, payableAt: chain.payableAt, deposit: chain.terms.deposit } }));
          return;
        }
        env.ctx.print(formatStatus(view, apiUrl));
        // A settled lease's slot is cleared on-chain (V2): only its deposit is left to say.
        env.ctx.print(chain.end === 0n ? `  chain:      settled (deposit was ${chain.terms.deposit})` : `  chain:      deposit ${chain.terms.deposit}, paid ${chain.paid}, pending claim ${chain.pending}`);
      });
    });

  const usageSchema = apiUrlOption.extend({ verify: z.boolean().optional() });
  group
    .command('usage')
    .description('the lease\'s usage records and checkpoints; --verify checks every record, proof and checkpoint and prints the dispute evidence of a wrong one')
    .argument('<lease>', 'the lease id')
    .option('--verify', 'check everything against the protocol and the chain (exit 1 when it does not verify)')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, raw: Record<string, unknown>, command: Command) => {
      const options = parseFlags(usageSchema, raw, 'tenant usage');
      const leaseId = parseLeaseId(rawId);
      await withTenantEnv(io, command, async (env) => {
        const { client } = await leaseClient(env, leaseId, options.apiUrl);
        const view = await client.usage(leaseId);
        const total = view.records.at(-1)?.record.total ?? 0n;
        const summary = { leaseId, records: view.records.length, checkpoints: view.checkpoints.length, total };
        if (!options.verify) {
          if (env.flags.json) env.ctx.print(toJson({ ...summary, usage: z.encode(wire.usageViewWire, view) }));
          else env.ctx.print(formatUsage(view.records.map((r) => r.record), view.checkpoints.map((c) => ({ seq: c.seq, status: c.status, countersigned: c.tenantSignature !== null }))));
          return;
        }
        try {
          const verified = await client.verifyUsage(view, leaseId);
          const result = { ...summary, verified: true, latestCheckpoint: verified.latest.seq, coveredUntil: verified.coveredUntil, verifiedTotal: verified.total };
          if (env.flags.json) env.ctx.print(toJson(result));
          else {
            env.ctx.print(`verified: ${view.records.length} records, every proof against checkpoint #${verified.latest.seq}'s root, ${view.checkpoints.length} checkpoints signed by the provider and consistent with the chain`);
            env.ctx.print(`  total ${verified.total} units, covered until ${new Date(Number(verified.coveredUntil) * 1000).toISOString()}; checkpoint #${verified.latest.seq} may be countersigned: provider tenant countersign ${leaseId}`);
          }
        } catch (err) {
          if (!(err instanceof UsageUnverifiedError)) throw err;
          const evidence = err.evidence ? describeEvidence(err.evidence) : null;
          const terms = err.evidence ? (await client.leaseOnChain(leaseId)).terms : undefined;
          const call = err.evidence && terms ? disputeCalldata(env.marketplace, terms, err.evidence, view.records) : undefined;
          const refused = { ...summary, verified: false, fault: err.fault, message: err.message, evidence, dispute: call ? { call: call.what, to: env.marketplace.address, data: call.data } : null };
          if (env.flags.json) env.ctx.print(toJson(refused));
          else {
            io.stderr.write(`NOT verified: ${err.message}\n`);
            if (evidence) io.stderr.write(`  evidence: ${JSON.stringify(evidence, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
            if (call) io.stderr.write(`  the contract upholds a dispute (${call.what}): file it with \`provider dispute ${leaseId}\` while the claim is in its challenge window\n`);
            io.stderr.write('  do not countersign this lease\'s checkpoints\n');
          }
          throw new CliExit(1);
        }
      });
    });

  const countersignSchema = apiUrlOption.extend({ seq: z.coerce.number().int().min(0).optional() });
  group
    .command('countersign')
    .description('verify the usage, then countersign a checkpoint (default: the latest) so the provider is paid at once')
    .argument('<lease>', 'the lease id')
    .option('--seq <n>', 'the checkpoint to countersign (default: the latest)')
    .option('--api-url <url>', 'the provider\'s API (default: the one it registered)')
    .action(async (rawId: string, raw: Record<string, unknown>, command: Command) => {
      const options = parseFlags(countersignSchema, raw, 'tenant countersign');
      const leaseId = parseLeaseId(rawId);
      await withTenantEnv(io, command, async (env) => {
        const { client } = await leaseClient(env, leaseId, options.apiUrl);
        let seq = options.seq;
        if (seq === undefined) {
          const latest = (await client.usage(leaseId)).checkpoints.at(-1);
          if (!latest) throw new UsageUnverifiedError('no-checkpoint', `lease ${leaseId} has no checkpoint yet`);
          seq = latest.seq;
        }
        const stored = await client.countersign(leaseId, seq);
        if (env.flags.json) env.ctx.print(toJson({ leaseId, seq: stored.seq, status: stored.status, cumulativeAmount: stored.checkpoint.cumulativeAmount, final: stored.checkpoint.resultDigest !== `0x${'0'.repeat(64)}` }));
        else env.ctx.print(`countersigned checkpoint #${stored.seq} of lease ${leaseId}: ${stored.checkpoint.cumulativeAmount} units over ${stored.checkpoint.recordCount} records (${stored.status})`);
      });
    });

  group
    .command('close')
    .description('close the lease on-chain: the provider stops it, bills to the end and the rest of the deposit comes back when it settles')
    .argument('<lease>', 'the lease id')
    .action(async (rawId: string, _raw: Record<string, unknown>, command: Command) => {
      const leaseId = parseLeaseId(rawId);
      await withTenantEnv(io, command, async (env) => {
        const { client } = await leaseClient(env, leaseId, undefined);
        const closed = await client.close(leaseId);
        if (env.flags.json) env.ctx.print(toJson({ leaseId, txHash: closed.txHash, closedAt: closed.closedAt }));
        else env.ctx.print(`lease ${leaseId} closed at ${new Date(Number(closed.closedAt) * 1000).toISOString()} (tx ${closed.txHash})`);
      });
    });

  const leasesSchema = z.object({ live: z.boolean().optional() });
  group
    .command('leases')
    .description('this tenant\'s leases, from the chain\'s LeaseOpened events, with their state on-chain')
    .option('--live', 'only leases not settled yet')
    .action(async (raw: Record<string, unknown>, command: Command) => {
      const options = parseFlags(leasesSchema, raw, 'tenant leases');
      await withTenantEnv(io, command, async (env) => {
        const tenant = await env.signer.getAddress();
        const opened = await env.directory.leasesOf(tenant);
        const onChain = await Promise.all(opened.map(async (l) => ({ lease: l, on: await env.marketplace.read('getLease', [l.leaseId]) })));
        const settlements = await env.directory.settlementsOf(onChain.filter(({ on }) => BigInt(on.end) === 0n).map(({ lease }) => lease.leaseId));
        const rows = onChain.map(({ lease, on }) => {
          const settled = settlements.get(lease.leaseId);
          return { ...lease, settled: BigInt(on.end) === 0n, end: BigInt(on.end), paid: settled?.paid ?? BigInt(on.paid), refund: settled?.refund ?? null };
        });
        const shown = options.live ? rows.filter((r) => !r.settled) : rows;
        if (env.flags.json) {
          env.ctx.print(toJson({ tenant, leases: shown }));
          return;
        }
        if (shown.length === 0) {
          env.ctx.print(`no leases for ${tenant}`);
          return;
        }
        env.ctx.print(`leases of ${tenant}:`);
        for (const r of shown) env.ctx.print(`  ${r.leaseId}  provider ${r.provider}  opened ${new Date(Number(r.startedAt) * 1000).toISOString()}  deposit ${r.deposit}  paid ${r.paid}  ${r.settled ? 'settled' : 'open'}`);
      });
    });
}

function printLog(io: CliIo, entry: LogEntry, json: boolean): void {
  if (json) io.stdout.write(`${JSON.stringify(z.encode(wire.logEntryWire, entry))}\n`);
  else (entry.stream === 'stderr' ? io.stderr : io.stdout).write(formatLogLine(entry));
}

function formatStatus(view: LeaseView, apiUrl: string): string {
  const host = new URL(apiUrl).hostname;
  const lines = [`lease ${view.leaseId}: ${view.state}${view.endReason ? ` (${view.endReason})` : ''}`];
  if (view.container) lines.push(`  container:  ${view.container.status}${view.container.exitCode === null ? '' : `, exit ${view.container.exitCode}`}${view.container.oomKilled ? ', out of memory' : ''}`);
  for (const p of view.ports) lines.push(`  port:       ${p.containerPort}/${p.protocol} -> ${host}:${p.hostPort}`);
  const cp = view.lastCheckpoint;
  if (cp) lines.push(`  checkpoint: #${cp.seq} ${cp.status}, ${cp.checkpoint.cumulativeAmount} units, ${cp.checkpoint.recordCount} records${cp.tenantSignature ? ', countersigned' : ''}`);
  return lines.join('\n');
}

function formatUsage(records: readonly { index: bigint; t0: bigint; t1: bigint; cpuMillis: bigint; amount: bigint; total: bigint }[], checkpoints: readonly { seq: number; status: string; countersigned: boolean }[]): string {
  const out = records.map((r) => `  #${r.index} ${r.t0}-${r.t1}: cpu ${r.cpuMillis} ms, ${r.amount} units (total ${r.total})`);
  out.push(`checkpoints: ${checkpoints.map((c) => `#${c.seq} ${c.status}${c.countersigned ? ' countersigned' : ''}`).join(', ') || 'none yet'}`);
  return out.join('\n');
}

/** The evidence as plain fields for people and JSON: what is wrong, where. */
function describeEvidence(evidence: UsageEvidence): Record<string, unknown> {
  if (evidence.kind === 'equivocation') return { kind: 'equivocation', checkpoints: [evidence.a.seq, evidence.b.seq] };
  const d = evidence.dispute;
  if (d.kind === 'missing') return { kind: 'missing-record', checkpoint: evidence.checkpoint.seq, index: d.index };
  if (d.kind === 'record') return { kind: 'record', checkpoint: evidence.checkpoint.seq, fault: d.fault, record: d.record };
  return { kind: 'pair', checkpoint: evidence.checkpoint.seq, fault: d.fault, a: d.a, b: d.b };
}

