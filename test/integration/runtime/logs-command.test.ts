import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configSchema } from '../../../src/config';
import { silentLogger } from '../../../src/log';
import { LogArchive, logArchiveDirFor } from '../../../src/runtime';
import { LogDigest } from '../../../src/settlement';
import { openStore, storePathFor, type StoredLease } from '../../../src/store';
import { systemClock } from '../../../src/util/clock';
import { deadPort, runCli, tempDir } from '../../support/cli-io';
import { aManifest } from '../../fixtures/runtime';
import { RuntimeHarness } from './harness';

jest.setTimeout(60_000);

const MARKET = '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512';
const h = new RuntimeHarness({ runtime: { nofileLimit: 4096 } });
afterAll(() => h.cleanup());

/** A config whose store knows lease 4 under `runtimeId`, and a daemon that is not running. */
async function storeWithLease(runtimeId: string): Promise<string> {
  const dataDir = tempDir();
  const store = openStore(storePathFor(dataDir, 5, MARKET));
  const lease: StoredLease = {
    leaseId: '4', runtimeId, quoteNonce: null, tenant: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC', manifestHash: `0x${'0'.repeat(64)}`,
    deposit: 10n ** 17n, rates: { perSecond: 1n, perCpuSecond: 2n, perGpuSecond: 3n, perGiBEgress: 4n }, allocation: { cpuMillicores: 1_000n, gpuCount: 0n, egressBytesPerSecond: 0n }, maxDuration: 60,
    openedAt: 1_700_000_000, state: 'running', endReason: null, exitCode: null, detail: '', closedAt: null,
    containerId: null, startedAt: 1_700_000_001, endedAt: null, imageDigest: null, timeline: null,
    resultDigest: null, logsSha256: null, updatedAt: 1_700_000_010,
  };
  store.leases.insert(lease, { fromState: 'quoted', toState: 'running', event: 'lease-opened', reason: 'test', at: 1_700_000_000 });
  store.close();
  const config = join(dataDir, 'provider.yaml');
  writeFileSync(config, `dataDir: ${dataDir}\napi:\n  port: ${await deadPort()}\nnetwork:\n  rpcUrl: http://127.0.0.1:1\n  chainId: 5\n  marketplaceAddress: "${MARKET}"\n`);
  return config;
}

describe('provider logs with the daemon down', () => {
  test("reads the lease's stdout and stderr from Docker, without a runtime or a firewall", async () => {
    const runtimeId = h.leaseId('cli');
    const manifest = aManifest({ command: ['sh', '-c'], args: ['echo to stdout; echo to stderr >&2; sleep 1'] }); // the sleep: see the Docker contract workload
    await h.runtime.start({ manifest, allocation: h.allocation(runtimeId, manifest), imageId: await h.imageId() });
    await h.runtime.wait(runtimeId);
    const run = await runCli(['-c', await storeWithLease(runtimeId), 'logs', '4']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('to stdout\n');
    expect(run.stderr).toBe(`(the daemon is not running: reading provider-lease-${runtimeId}'s logs from Docker)\nto stderr\n`);
  });

  test('says so when the container is gone, and exits 1', async () => {
    const run = await runCli(['-c', await storeWithLease(h.leaseId('gone')), 'logs', '4']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('container is removed, as it is once the lease is settled, and no archive of its logs is kept');
  });

  test('reads a settled lease\'s archived logs when its container is gone', async () => {
    const config = await storeWithLease(h.leaseId('archived'));
    const dataDir = config.slice(0, -'/provider.yaml'.length);
    const archive = new LogArchive({ dir: logArchiveDirFor(dataDir, 5, MARKET), settings: () => configSchema.parse({ dataDir }).logArchive, clock: systemClock, log: silentLogger() });
    async function* lines() {
      yield { stream: 'stdout' as const, time: '2026-12-04T00:00:00.000000001Z', text: 'kept line' };
      yield { stream: 'stderr' as const, time: '2026-12-04T00:00:01.000000001Z', text: 'kept error' };
    }
    await archive.write('4', lines(), { keepUntil: 0, digest: new LogDigest() });
    const run = await runCli(['-c', config, 'logs', '4']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('kept line\n');
    expect(run.stderr).toBe("(the daemon is not running: reading lease 4's archived logs)\nkept error\n");
  });
});
