import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, storePathFor, type StoredLease } from '../../../src/store';
import { deadPort, runCli, tempDir } from '../../support/cli-io';

const MARKET = '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512';

function aLease(overrides: Partial<StoredLease> = {}): StoredLease {
  return {
    leaseId: '4', runtimeId: 'pabc-4', quoteNonce: null, tenant: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC', manifestHash: `0x${'0'.repeat(64)}`,
    deposit: 10n ** 17n, rates: { perSecond: 1n, perCpuSecond: 2n, perGpuSecond: 3n, perGiBEgress: 4n }, allocation: { cpuMillicores: 1000n, gpuCount: 0n, egressBytesPerSecond: 0n }, maxDuration: 60,
    openedAt: 1_700_000_000, state: 'settled', endReason: 'exited', exitCode: 0, detail: 'paid and settled on-chain', closedAt: null,
    containerId: 'c1', startedAt: 1_700_000_001, endedAt: 1_700_000_010, imageDigest: null, timeline: null,
    resultDigest: null, logsSha256: null, updatedAt: 1_700_000_010, ...overrides,
  };
}

describe('operator commands with the daemon down (in-process CLI, a real store file)', () => {
  it('say there is no store when the daemon never ran with this config, and exit 1', async () => {
    const dataDir = tempDir();
    const port = await deadPort();
    for (const command of ['status', 'leases', 'earnings']) {
      const run = await runCli(['--data-dir', dataDir, '--set', `api.port=${port}`, command]);
      expect([command, run.code]).toEqual([command, 1]);
      expect(run.stderr).toContain(`no store under ${dataDir}: the daemon has not run with this config`);
    }
  });

  it('answer status, leases and earnings from the store of a configured network', async () => {
    const dataDir = tempDir();
    const port = await deadPort();
    const store = openStore(storePathFor(dataDir, 5, MARKET));
    store.leases.insert(aLease(), { fromState: 'quoted', toState: 'quoted', event: 'lease-opened', reason: 'LeaseOpened in block 3', at: 1_700_000_000 });
    store.meta.set('withdrawn-total', '77');
    store.close();
    const config = join(dataDir, 'provider.yaml');
    writeFileSync(config, `dataDir: ${dataDir}\napi:\n  port: ${port}\nnetwork:\n  rpcUrl: http://127.0.0.1:1\n  chainId: 5\n  marketplaceAddress: "${MARKET}"\n`);

    const status = await runCli(['-c', config, 'status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ daemon: 'down', chainId: 5, marketplace: MARKET, store: storePathFor(dataDir, 5, MARKET), leases: { settled: 1 } });

    const leases = await runCli(['-c', config, 'leases', '--json']);
    expect(JSON.parse(leases.stdout)).toMatchObject({ source: 'store', leases: [{ leaseId: '4', state: 'settled', container: 'provider-lease-pabc-4', earned: '0', image: null }] });
    const detail = await runCli(['-c', config, 'leases', '4']);
    expect(detail.stdout).toContain('(the daemon is not running: from its store)');
    expect(detail.stdout).toMatch(/quoted\s+quoted\s+lease-opened\s+LeaseOpened in block 3/);

    const earnings = await runCli(['-c', config, 'earnings', '--json']);
    expect(JSON.parse(earnings.stdout)).toMatchObject({ source: 'store', withdrawn: '77', withdrawable: null, balance: null });

    const missing = await runCli(['-c', config, 'leases', '5']);
    expect([missing.code, missing.stderr]).toEqual([1, 'provider: no lease 5 with this provider\n']);
  });

  it('find the devnet\'s store through the deployment it recorded', async () => {
    const dataDir = tempDir();
    const port = await deadPort();
    mkdirSync(join(dataDir, 'devnet'), { recursive: true });
    writeFileSync(join(dataDir, 'devnet', 'deployment.json'), JSON.stringify({ chainId: 31337, tokenAddress: MARKET, marketplaceAddress: MARKET, deployedAt: 'x' }));
    openStore(storePathFor(dataDir, 31337, MARKET)).close();
    const run = await runCli(['--data-dir', dataDir, '--set', `api.port=${port}`, 'status']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^daemon\s+NOT running/);
    expect(run.stdout).toMatch(/leases\s+none/);
  });

  it('refuse withdraw without the daemon, and bad flags as usage errors', async () => {
    const port = await deadPort();
    const withdraw = await runCli(['--data-dir', tempDir(), '--set', `api.port=${port}`, 'withdraw']);
    expect(withdraw.code).toBe(1);
    expect(withdraw.stderr).toContain('withdraw needs the running daemon');
    expect((await runCli(['--set', `api.port=${port}`, 'withdraw', '--wait', 'soon'])).code).toBe(2);
    for (const wait of ['', '0x10', '1e2', '301']) expect((await runCli(['--set', `api.port=${port}`, 'withdraw', '--wait', wait])).code).toBe(2);
    expect((await runCli(['--set', `api.port=${port}`, 'logs', '4', '--tail', 'many'])).code).toBe(2);
    expect((await runCli(['--set', `api.port=${port}`, 'logs'])).code).toBe(2);
  });
});
