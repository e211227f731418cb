import { formatUnits } from 'ethers';
import type { DaemonStatus, EarningsView, GpuHealthStatusView, ReachabilityView, LogEntry, OperatorLeaseDetail, OperatorLeaseSummary, WithdrawResult } from '../api';
import type { LeaseState } from '../leases';
import { formatBytes } from '../util/bytes';
import { table } from '../util/text-table';
import { formatPin } from '../tls';

/**
 * The text forms of `provider status`, `leases`, `earnings` and `withdraw`: aligned columns for
 * people, the same on a terminal or in a pipe; `--json` is the form for scripts. Amounts are
 * token base units; with an 18-decimal token, the token amount first and the base units after.
 */

/** The daemon's status, or what the store of a stopped daemon says. */
export type StatusReport =
  | ({ daemon: 'running'; apiUrl: string } & DaemonStatus)
  | { daemon: 'down'; apiUrl: string; store: string; chainId: number; marketplace: string; provider: string | null; leases: Record<LeaseState, number> };

export function formatStatus(report: StatusReport): string {
  const rows: string[][] = [];
  if (report.daemon === 'running') {
    rows.push(['daemon', `running at ${report.apiUrl}, version ${report.version}, since ${time(report.startedAt)}`]);
    rows.push(['provider', report.provider]);
    const chain = [`chain id ${report.chainId}${report.devnet ? ' (LOCAL DEVNET: tokens are worthless)' : ''}`];
    chain.push(report.chain.headBlock === null ? 'RPC not answering' : `head block ${report.chain.headBlock}`);
    if (report.chain.cursorBlock !== null) chain.push(`events handled to block ${report.chain.cursorBlock}`);
    rows.push(['chain', chain.join(', ')]);
    rows.push(['docker', report.docker.reachable ? 'reachable' : 'NOT reachable']);
    rows.push(['accepting', report.accepting ? 'yes: taking new leases' : 'no: draining or shutting down']);
    if (report.reachability) rows.push(...reachabilityRows(report.reachability));
    if (report.tlsSha256) rows.push(['tls', `sha256 ${formatPin(report.tlsSha256)} (tenants and browsers should see this certificate)`]);
    const gpus = report.gpus ?? [];
    if (gpus.length > 0) {
      const sick = gpus.filter((gpu) => gpu.status !== 'healthy');
      rows.push(['gpus', `${gpus.length - sick.length} of ${gpus.length} healthy and on sale`]);
      for (const gpu of gpus) rows.push(['', gpuHealthText(gpu)]);
    }
  } else {
    rows.push(['daemon', `NOT running (nothing answers at ${report.apiUrl}); from its store`]);
    rows.push(['store', report.store]);
    if (report.provider) rows.push(['provider', report.provider]);
    rows.push(['chain', `chain id ${report.chainId}, marketplace ${report.marketplace}`]);
  }
  rows.push(['leases', leaseCountsText(report.leases)]);
  return lines(table(rows));
}

const VERIFIED_TEXT: Record<ReachabilityView['verified'], string> = {
  outside: 'verified from outside',
  'no-vantage': 'not verified from outside (no vantage point)',
  failed: 'NOT reachable from outside',
  'not-needed': 'local only',
};

/** The path tenants use, its URL, whether it was proven, and the fix when it was not. */
export function reachabilityRows(r: ReachabilityView): string[][] {
  const rows = [
    ['reachable', `${r.path === 'none' ? 'NO PATH' : r.path} at ${r.url}: ${VERIFIED_TEXT[r.verified]}`],
    ['', r.detail],
  ];
  if (r.fix) rows.push(['', `fix: ${r.fix}`]);
  return rows;
}

function gpuHealthText(gpu: GpuHealthStatusView): string {
  const temperature = gpu.temperatureCelsius === null ? '' : `, ${gpu.temperatureCelsius} C`;
  const xids = gpu.xidErrors > 0 ? `, ${gpu.xidErrors} Xid error(s)` : '';
  const head = `GPU ${gpu.index} ${gpu.uuid}${temperature}${xids}`;
  if (gpu.status === 'healthy') return `${head}: healthy`;
  if (gpu.status === 'recovering') return `${head}: RECOVERING, back on sale at ${time(gpu.backOnSaleAt)} if it stays healthy (was: ${gpu.reason})`;
  return `${head}: UNHEALTHY since ${time(gpu.since)}, off sale: ${gpu.reason}`;
}

function leaseCountsText(counts: Record<LeaseState, number>): string {
  const present = Object.entries(counts).filter(([, n]) => n > 0);
  return present.length === 0 ? 'none' : present.map(([state, n]) => `${n} ${state}`).join(', ');
}

export function formatLeases(leases: readonly OperatorLeaseSummary[], source: 'daemon' | 'store'): string {
  const out: string[] = [];
  if (source === 'store') out.push('(the daemon is not running: from its store)');
  if (leases.length === 0) return lines([...out, 'no leases yet']);
  const rows = [['LEASE', 'STATE', 'IMAGE', 'TENANT', 'STARTED', 'ENDED', 'END REASON', 'EARNED (base units)', 'CHECKPOINT']];
  for (const l of leases) {
    rows.push([l.leaseId, l.state, l.image ?? '-', short(l.tenant), time(l.startedAt), time(l.endedAt), l.endReason ?? '-', l.earned.toString(), checkpointText(l.lastCheckpoint)]);
  }
  return lines([...out, ...table(rows)]);
}

export function formatLeaseDetail(lease: OperatorLeaseDetail, source: 'daemon' | 'store'): string {
  const out: string[] = [];
  if (source === 'store') out.push('(the daemon is not running: from its store)');
  out.push(
    ...table([
      ['lease', lease.leaseId],
      ['state', `${lease.state}${lease.endReason ? ` (${lease.endReason})` : ''}${lease.detail ? `: ${lease.detail}` : ''}`],
      ['tenant', lease.tenant],
      ['image', lease.image ?? '-'],
      ['container', lease.container],
      ['opened', time(lease.openedAt)],
      ['started', time(lease.startedAt)],
      ['ended', time(lease.endedAt)],
      ['exit code', lease.exitCode === null ? '-' : String(lease.exitCode)],
      ['deposit', `${lease.deposit} base units`],
      ['earned', `${lease.earned} base units (${checkpointText(lease.lastCheckpoint)})`],
      ['on-chain', lease.chainSettled ? 'settled' : lease.closedAt ? `closed at ${time(lease.closedAt)}` : 'open'],
    ]),
  );
  out.push('', 'TRANSITIONS');
  out.push(...table([['AT', 'FROM', 'TO', 'EVENT', 'REASON'], ...lease.transitions.map((t) => [time(t.at), t.from, t.to, t.event, t.reason ?? ''])], '  '));
  if (lease.checkpoints.length > 0) {
    out.push('', 'CHECKPOINTS');
    const rows = [['SEQ', 'AMOUNT (base units)', 'PERIOD END', 'STATUS', 'FINAL', 'COUNTERSIGNED']];
    for (const cp of lease.checkpoints) rows.push([String(cp.seq), cp.cumulativeAmount.toString(), time(cp.periodEnd), cp.status, cp.final ? 'yes' : 'no', cp.countersigned ? 'yes' : 'no']);
    out.push(...table(rows, '  '));
  }
  if (lease.gpus.length > 0) {
    out.push('', `GPUS (read ${time(lease.gpus[0]?.at ?? null)}; informational, billing is allocated GPU-seconds)`);
    const rows = [['UUID', 'UTILISATION', 'MEMORY USED', 'OF']];
    for (const gpu of lease.gpus) {
      const utilization = gpu.utilization === null ? 'n/a' : `${Math.round(gpu.utilization * 100)}%`;
      rows.push([gpu.uuid, gpu.parentUuid ? `${utilization} (of ${gpu.parentUuid}: MIG slices have none of their own)` : utilization, bytesText(gpu.memoryUsedBytes), bytesText(gpu.memoryTotalBytes)]);
    }
    out.push(...table(rows, '  '));
  }
  return lines(out);
}

function bytesText(bytes: number | null): string {
  return bytes === null ? 'n/a' : formatBytes(bytes);
}

export function formatEarnings(view: EarningsView, source: 'daemon' | 'store'): string {
  const decimals = view.token?.decimals ?? null;
  const unasked = 'unknown (the daemon is down; the chain was not asked)';
  const money = (value: bigint | null): string => (value === null ? unasked : amount(value, decimals));
  const out: string[] = [];
  if (source === 'store') out.push('(the daemon is not running: from its store; chain figures need the daemon)');
  const rows = [
    ['provider', view.provider ?? 'unknown'],
    // Where withdrawals go is the marketplace's registration, not this machine's config: only the chain knows it.
    ['payout', view.payout === null ? unasked : `${view.payout}  (every withdrawal pays this address)`],
    ['token', view.token ? tokenText(view.token) : 'unknown'],
    ['withdrawable', `${money(view.withdrawable)}${view.withdrawable ? '  (finalised; `provider withdraw` pays it to the payout address)' : ''}`],
    ['claimed', `${amount(view.claimedPending, decimals)}${view.claimedPending > 0n ? '  (claims waiting out the challenge window)' : ''}`],
    ['withdrawn', amount(view.withdrawn, decimals)],
    ['balance', money(view.balance)],
  ];
  if (view.withdrawal) rows.push(['withdrawal', `${view.withdrawal.key} ${view.withdrawal.state}`]);
  out.push(...table(rows));
  if (view.leases.length > 0) {
    out.push('', ...table([['LEASE', 'STATE', 'EARNED (base units)', 'PAID (base units)', 'CHECKPOINT'], ...view.leases.map((l) => [l.leaseId, l.state, l.earned.toString(), l.paid.toString(), l.checkpoint ?? '-'])]));
  }
  return lines(out);
}

/** What the earnings view adds to a withdrawal's result: the token's decimals and the payout address (null when unknown). */
export interface WithdrawContext {
  decimals: number | null;
  payout: string | null;
}

export function formatWithdraw(result: WithdrawResult, context: WithdrawContext): string {
  const { decimals } = context;
  const to = context.payout === null ? '' : ` to ${context.payout}`;
  switch (result.outcome) {
    case 'nothing':
      return lines(['nothing to withdraw: the marketplace holds no finalised earnings for this provider']);
    case 'confirmed':
      return lines([`withdrew ${amount(result.amount, decimals)}${to}`, `  transaction ${result.txHash ?? '-'} (${result.key ?? '-'})`]);
    case 'pending':
      return lines([`withdrawal of ${amount(result.amount, decimals)}${to} sent as ${result.key ?? '-'}; not confirmed yet`, '  `provider earnings` shows it once it is']);
    default:
      return lines([`withdrawal ${result.outcome}: ${result.error ?? 'no reason given'}`, `  transaction ${result.txHash ?? 'none'} (${result.key ?? '-'})`]);
  }
}

/** One log line for a terminal: the text as the container wrote it. */
export function formatLogLine(entry: LogEntry): string {
  return `${entry.line}\n`;
}

/** `1.5 (1500000000000000000 base units)` for an 18-decimal token; base units otherwise. */
export function amount(value: bigint, decimals: number | null): string {
  if (decimals !== 18) return `${value} base units`;
  const tokens = formatUnits(value, 18).replace(/\.0$/, '');
  return `${tokens} (${value} base units)`;
}

function tokenText(token: NonNullable<EarningsView['token']>): string {
  const about = [token.symbol, token.decimals === null ? null : `${token.decimals} decimals`].filter((part) => part !== null);
  return about.length === 0 ? token.address : `${token.address} (${about.join(', ')})`;
}

function checkpointText(last: OperatorLeaseSummary['lastCheckpoint']): string {
  if (!last) return '-';
  // status is how far payment went; final marks the lease's last checkpoint (with its result digest).
  return `#${last.seq} ${last.status}${last.final ? ' (last)' : ''}${last.countersigned ? ', countersigned' : ''}`;
}

/** Unix seconds as UTC, to the second. */
function time(seconds: number | null): string {
  return seconds === null ? '-' : `${new Date(seconds * 1000).toISOString().slice(0, 19)}Z`;
}

function short(address: string): string {
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}

function lines(out: readonly string[]): string {
  return `${out.join('\n')}\n`;
}
