import type { JsonRpcProvider, Wallet } from 'ethers';
import { ZERO_BYTES32, tokenAt } from '../../src/chain';
import type { TenantClient } from '../../src/tenant';
import { DaemonProcess, accountOf, leaseSettlement, until } from './daemon-process';

jest.setTimeout(150_000);

const WORKLOAD = {
  image: 'provider-test/busybox:latest',
  // The pause orders the two lines: stdout and stderr are separate pipes, read by Docker in no set order.
  command: ['sh', '-c', 'echo hello operator; sleep 0.5; echo to stderr >&2; sleep 1'],
  resources: { cpuMillis: 250, memoryBytes: 32 * 2 ** 20 },
  maxDurationSeconds: 120,
};

let daemon: DaemonProcess;
let tenant: { client: TenantClient; wallet: Wallet; rpc: JsonRpcProvider };

beforeAll(async () => {
  daemon = await DaemonProcess.create('operator');
  await daemon.start();
  tenant = daemon.tenant();
});

afterAll(async () => {
  tenant?.rpc.destroy();
  await daemon?.cleanup();
});

function json(run: { code: number | null; stdout: string; stderr: string }): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  expect({ code: run.code, stderr: run.code === 0 ? '' : run.stderr }).toEqual({ code: 0, stderr: '' });
  return JSON.parse(run.stdout);
}

describe('provider status, leases, logs, earnings, withdraw (the installed CLI against a real daemon)', () => {
  it('answer from the daemon with real values, and from the store once it is stopped', async () => {
    const { client } = tenant;
    const { leaseId } = await client.open(await client.quote(WORKLOAD), 10n ** 17n);
    const id = leaseId.toString();
    const final = await until('the final checkpoint', async () => {
      const last = (await client.usage(leaseId)).checkpoints.at(-1);
      return last && last.checkpoint.resultDigest !== ZERO_BYTES32 ? last : undefined;
    }, 60_000, 200);

    // The container is kept until the lease settles: its log is there to read.
    const logs = await daemon.cli(['logs', id]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toBe('hello operator\n');
    expect(logs.stderr).toBe('to stderr\n');
    const logsJson = await daemon.cli(['logs', id, '--json', '--tail', '1']);
    expect(logsJson.stdout.trim().split('\n').map((l) => JSON.parse(l).line)).toEqual(['to stderr']);

    await client.countersign(leaseId, final.seq);
    await until('settled', async () => (await client.lease(leaseId)).state === 'settled', 60_000, 500);

    const status = json(await daemon.cli(['status', '--json']));
    expect(status).toMatchObject({ daemon: 'running', provider: daemon.ready!.provider, chainId: daemon.ready!.chainId, devnet: true, docker: { reachable: true } });
    expect(status.leases.settled).toBe(1);

    const leases = json(await daemon.cli(['leases', '--json']));
    expect(leases.source).toBe('daemon');
    expect(leases.leases).toHaveLength(1);
    expect(leases.leases[0]).toMatchObject({
      leaseId: id,
      state: 'settled',
      endReason: 'exited',
      image: WORKLOAD.image,
      tenant: tenant.wallet.address,
      earned: final.checkpoint.cumulativeAmount.toString(),
      lastCheckpoint: { seq: final.seq, status: 'final', final: true, countersigned: true },
    });
    const detail = json(await daemon.cli(['leases', id, '--json']));
    expect(detail.lease.transitions.map((t: { to: string }) => t.to)).toEqual(['quoted', 'pulling', 'starting', 'running', 'finishing', 'settling', 'settled']);

    // Earnings as the chain has them: redeemed, credited, withdrawn to the payout address (the
    // daemon withdraws any credited earnings at once with the default threshold 0), nothing left.
    const { marketplace, provider } = daemon.ready!;
    const token = tokenAt(daemon.ready!.token, tenant.rpc);
    await until('earnings withdrawn', async () => (await accountOf(tenant.rpc, marketplace, provider)).earnings === 0n, 30_000, 500);
    const settlement = await leaseSettlement(tenant.rpc, marketplace, leaseId);
    const earnings = json(await daemon.cli(['earnings', '--json']));
    expect(earnings).toMatchObject({
      source: 'daemon',
      provider,
      payout: provider,
      token: { address: daemon.ready!.token, decimals: 18 },
      withdrawable: '0',
      balance: (await token.read('balanceOf', [provider])).toString(),
      leases: [{ leaseId: id, state: 'settled', earned: final.checkpoint.cumulativeAmount.toString(), paid: settlement?.paid.toString(), checkpoint: 'final' }],
    });
    expect(settlement?.paid).toBe(final.checkpoint.cumulativeAmount);
    const withdraw = json(await daemon.cli(['withdraw', '--json']));
    expect(withdraw).toEqual({ outcome: 'nothing', key: null, amount: '0', txHash: null, error: null });

    // Stopped: the store answers, and says where the answer came from.
    expect(await daemon.stop()).toBe(0);
    const down = json(await daemon.cli(['status', '--json']));
    expect(down).toMatchObject({ daemon: 'down', chainId: daemon.ready!.chainId, marketplace: daemon.ready!.marketplace, provider: daemon.ready!.provider });
    expect(down.leases.settled).toBe(1);
    const text = await daemon.cli(['status']);
    expect(text.stdout).toMatch(/daemon\s+NOT running/);
    const stored = json(await daemon.cli(['leases', '--json']));
    expect(stored.source).toBe('store');
    expect(stored.leases).toEqual(leases.leases);
    const refused = await daemon.cli(['withdraw']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('withdraw needs the running daemon');
  });
});
