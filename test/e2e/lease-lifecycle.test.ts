import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { LogEntry } from '../../src/api';
import { ZERO_BYTES32, tokenAt } from '../../src/chain';
import { LogDigest, resultDigest } from '../../src/settlement';
import type { TenantClient } from '../../src/tenant';
import { accountOf, daemonForTests, leaseSettlement, until, type DaemonProcess, type DevTenant } from './daemon-process';

const sh = promisify(execFile);
jest.setTimeout(180_000);

const TOKEN = 10n ** 18n;
const WORKLOAD = {
  image: 'provider-test/busybox:latest',
  command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo tick $i; sleep 1; done; echo done >&2'],
  resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 },
  maxDurationSeconds: 300,
};

let daemon: DaemonProcess;
let tenant: DevTenant;
daemonForTests('lifecycle', (d, t) => {
  daemon = d;
  tenant = t;
});

async function balance(who: string): Promise<bigint> {
  return tokenAt(daemon.ready!.token, tenant.rpc).read('balanceOf', [who]);
}

async function onChain(leaseId: bigint): Promise<{ paid: bigint; refund: bigint }> {
  const settlement = await leaseSettlement(tenant.rpc, daemon.ready!.marketplace, leaseId);
  if (!settlement) throw new Error(`lease ${leaseId} has no LeaseSettled`);
  return settlement;
}

/** Waits until the provider's earnings are withdrawn and its payout address (the operator key's by default) got `amount` more than `before`. */
async function withdrawnToPayout(before: bigint, amount: bigint): Promise<void> {
  const { marketplace, provider } = daemon.ready!;
  const account = await accountOf(tenant.rpc, marketplace, provider);
  expect(account.payout).toBe(provider);
  await until('earnings withdrawn to the payout', async () => (await accountOf(tenant.rpc, marketplace, provider)).earnings === 0n && (await balance(account.payout)) - before === amount, 30_000, 500);
}

async function settled(leaseId: bigint): Promise<Awaited<ReturnType<TenantClient['lease']>>> {
  return until('the lease is settled', async () => {
    const view = await tenant.client.lease(leaseId);
    return view.state === 'settled' ? view : undefined;
  }, 120_000, 500);
}

async function finalCheckpoint(leaseId: bigint) {
  return until('the final checkpoint', async () => {
    const view = await tenant.client.usage(leaseId);
    const last = view.checkpoints.at(-1);
    return last && last.checkpoint.resultDigest !== ZERO_BYTES32 ? { view, last } : undefined;
  }, 60_000, 200);
}

describe('provider start (a real daemon process, real Docker, real anvil, the tenant client)', () => {
  it('runs a CPU lease to completion: logs streamed, usage verified, redeemed, tenant refunded the rest', async () => {
    const { client, wallet } = tenant;
    const tenantBefore = await balance(wallet.address);
    const providerBefore = await balance(daemon.ready!.provider);
    const quote = await client.quote(WORKLOAD);
    const deposit = TOKEN;
    const { leaseId } = await client.open(quote, deposit);
    await until('running', async () => (await client.lease(leaseId)).state === 'running', 30_000);

    const lines: LogEntry[] = [];
    for await (const entry of client.logs(leaseId, { follow: true })) lines.push(entry);
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.line)).toEqual(['tick 1', 'tick 2', 'tick 3', 'tick 4', 'tick 5']);
    expect(lines.filter((l) => l.stream === 'stderr').map((l) => l.line)).toEqual(['done']);

    const { view, last } = await finalCheckpoint(leaseId);
    const verified = await client.verifyUsage(view, leaseId);
    expect(verified.total).toBe(last.checkpoint.cumulativeAmount);
    // The result digest follows from the exit code and the logs the tenant streamed.
    const digest = new LogDigest();
    for (const l of lines) digest.add(l.stream, l.line);
    expect(last.checkpoint.resultDigest).toBe(resultDigest(0, digest.digest()));

    const countersigned = await client.countersign(leaseId, last.seq);
    expect(countersigned.tenantSignature).not.toBeNull();
    const ended = await settled(leaseId);
    expect(ended.endReason).toBe('exited');
    expect(ended.container?.exitCode ?? 0).toBe(0);

    const chain = await onChain(leaseId);
    expect(chain).toEqual({ paid: last.checkpoint.cumulativeAmount, refund: deposit - last.checkpoint.cumulativeAmount });
    // Redeemed: credited to the provider at once (V2 pays earnings out by withdraw() to the payout
    // address); the rest of the deposit back to the tenant.
    await withdrawnToPayout(providerBefore, chain.paid);
    expect(tenantBefore - (await balance(wallet.address))).toBe(chain.paid);
  });

  it('claims against a tenant who never countersigns, is paid after the window and withdraws', async () => {
    const { client, wallet } = tenant;
    const tenantBefore = await balance(wallet.address);
    const providerBefore = await balance(daemon.ready!.provider);
    const quote = await client.quote(WORKLOAD);
    const { leaseId } = await client.open(quote, TOKEN);
    const { last } = await finalCheckpoint(leaseId);
    const ended = await settled(leaseId);
    expect(ended.lastCheckpoint?.status).toBe('final');
    const chain = await onChain(leaseId);
    expect(chain.paid).toBe(last.checkpoint.cumulativeAmount);
    expect(chain.paid).toBeGreaterThan(0n);
    // Finalised into earnings, then withdrawn to the payout address.
    await withdrawnToPayout(providerBefore, chain.paid);
    expect(tenantBefore - (await balance(wallet.address))).toBe(chain.paid);
  });

  it('bills the CPU of a short job that exits between samples, within 1 % of what its own cgroup counted', async () => {
    const { client } = tenant;
    // About 0.8 s of CPU as a fixed amount of work, then the exit.
    const burn = 'i=0; while [ $i -lt 450000 ]; do i=$((i+1)); done; echo burnt';
    // Half a core more than the burn needs: a record's CPU is capped at the allocation over its
    // whole seconds, and under gVisor the sandbox's own work pushes a one-core burn a little past it.
    const quote = await client.quote({ ...WORKLOAD, command: ['sh', '-c', burn], resources: { cpuMillis: 1500, memoryBytes: 64 * 2 ** 20 } });
    const { leaseId } = await client.open(quote, TOKEN);
    const { view } = await finalCheckpoint(leaseId);
    // What the workload used, counted by the host (the guest cannot see it under gVisor): its
    // lease's parent cgroup, which kept counting past the exit, less the baseline at its start.
    const { stdout: names } = await sh('docker', ['ps', '-a', '--format', '{{.Names}}']);
    const name = names.split('\n').find((n) => n.endsWith(`-${leaseId}`));
    expect(name).toBeDefined();
    const { stdout: inspected } = await sh('docker', ['inspect', '-f', '{{.HostConfig.CgroupParent}}|{{index .Config.Labels "provider.counters-baseline"}}', name!]);
    const [parent, baseline] = inspected.trim().split('|') as [string, string];
    const total = BigInt((await readFile(`/sys/fs/cgroup/cpuacct${parent}/cpuacct.usage`, 'utf8')).trim());
    const usedMillis = (total - BigInt((JSON.parse(baseline) as { cpuNanos: string }).cpuNanos)) / 1_000_000n;
    expect(usedMillis).toBeGreaterThan(300n);
    await client.verifyUsage(view, leaseId);
    const billed = view.records.reduce((sum, r) => sum + r.record.cpuMillis, 0n);
    expect(billed).toBeGreaterThanOrEqual(usedMillis);
    expect(Number(billed - usedMillis)).toBeLessThanOrEqual(Number(usedMillis) * 0.01);
    await client.countersign(leaseId, view.checkpoints.at(-1)!.seq);
    expect((await settled(leaseId)).endReason).toBe('exited');
  });

  it('stops the container of a lease the tenant closes on-chain within one follower poll', async () => {
    const { client } = tenant;
    const quote = await client.quote({ ...WORKLOAD, command: ['sleep', '600'] });
    const { leaseId } = await client.open(quote, TOKEN);
    await until('running', async () => (await client.lease(leaseId)).state === 'running', 30_000);
    await new Promise((r) => setTimeout(r, 3_000));
    const { closedAt } = await client.close(leaseId);
    const receiptAt = Date.now();
    await until('container stopped', async () => (await client.lease(leaseId)).container?.running === false, 15_000, 100);
    // One devnet block to confirm the close (1 s), one follower poll (1 s), the stop itself.
    expect(Date.now() - receiptAt).toBeLessThan(3_500);
    const ended = await settled(leaseId);
    expect(ended.endReason).toBe('tenant-closed');
    const view = await client.usage(leaseId);
    await client.verifyUsage(view, leaseId);
    expect(view.records.at(-1)!.record.t1 <= closedAt).toBe(true);
    expect((await onChain(leaseId)).paid).toBeGreaterThan(0n);
    // The lease's container is gone once it is settled.
    const { stdout } = await sh('docker', ['ps', '-aq', '--filter', `label=provider.lease-id`, '--filter', `status=running`]);
    expect(stdout).not.toContain(String(leaseId));
  });
});
