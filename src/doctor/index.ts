import { describeError } from '../errors';
import {
  checkAccount,
  checkApiPort,
  checkCgroup,
  checkChain,
  checkClock,
  checkDisk,
  checkDocker,
  checkGpuHealth,
  checkGpuPassthrough,
  checkKey,
  checkSandbox,
  type ChainFacts,
  type CheckResult,
  type DoctorContext,
} from './checks';
import { checkTlsCertificate, checkTlsPin } from './tls-checks';

import { checkReachability } from './reachability';

export type { ReachabilityProbes } from './reachability';
export type { CheckResult, CheckStatus, DoctorContext } from './checks';
export type { RegistrationSource } from './tls-checks';
export { testGpuPassthrough } from './gpu-passthrough-test';
export type { PassthroughVerdict } from './gpu-passthrough-test';

/**
 * Every preflight check, in the order an operator fixes things: the engine, its sandbox, the GPUs through it,
 * the disk, the API port, the chain, the key, the account, the clock. A check that throws is a
 * failure of that check, never of the doctor.
 */
export async function runDoctor(ctx: DoctorContext): Promise<CheckResult[]> {
  const facts: ChainFacts = { rpcOk: false, wallet: undefined };
  let certificate: ReturnType<typeof checkTlsCertificate>['info'];
  const steps: [string, () => CheckResult | CheckResult[] | Promise<CheckResult | CheckResult[]>][] = [
    ['docker', () => checkDocker(ctx)],
    ['cgroup', () => checkCgroup(ctx)],
    ['sandbox', () => checkSandbox(ctx)],
    ['gpu-passthrough', () => checkGpuPassthrough(ctx)],
    ['gpu-health', () => checkGpuHealth(ctx)],
    ['disk', () => checkDisk(ctx)],
    ['api-port', () => checkApiPort(ctx)],
    ['reachability', () => (ctx.reachability ? checkReachability(ctx, ctx.reachability) : { id: 'reachability', status: 'skip' as const, detail: 'not checked', fix: null })],
    ['chain', () => checkChain(ctx, facts)],
    ['key', () => checkKey(ctx, facts)],
    ['account', () => checkAccount(ctx, facts)],
    [
      'tls-cert',
      () => {
        const found = checkTlsCertificate(ctx);
        certificate = found.info;
        return found.check;
      },
    ],
    ['tls-pin', () => checkTlsPin(ctx, facts, certificate)],
    ['clock', () => checkClock(ctx, facts)],
  ];
  const results: CheckResult[] = [];
  for (const [id, step] of steps) {
    try {
      const outcome = await step();
      results.push(...(Array.isArray(outcome) ? outcome : [outcome]));
    } catch (err) {
      results.push({ id, status: 'fail', detail: `the check itself failed: ${describeError(err)}`, fix: null });
    }
  }
  return results;
}

export function formatDoctorText(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.id.length));
  const lines = results.map((r) => {
    const head = `${r.status.toUpperCase().padEnd(4)}  ${r.id.padEnd(width)}  ${r.detail}`;
    return r.fix && (r.status === 'fail' || r.status === 'warn') ? `${head}\n${' '.repeat(width + 8)}fix: ${r.fix}` : head;
  });
  const count = (status: CheckResult['status']) => results.filter((r) => r.status === status).length;
  lines.push('', `${count('pass')} passed, ${count('warn')} warnings, ${count('fail')} failed, ${count('skip')} skipped`);
  return `${lines.join('\n')}\n`;
}
