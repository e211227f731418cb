import type { DaemonStatus, Offer } from '../../../src/api';
import { LiveSummary, summaryLine } from '../../../src/cli/start-summary';
import { manualClock } from '../../../src/util/clock';

const STATUS: DaemonStatus = {
  version: '0.1.0',
  provider: '0x00000000000000000000000000000000000000aa',
  chainId: 31337,
  devnet: true,
  accepting: true,
  startedAt: 0,
  leases: { quoted: 0, pulling: 1, starting: 0, running: 2, stopping: 0, finishing: 0, settling: 0, settled: 5, failed: 0, rejected: 3 },
  docker: { reachable: true },
  chain: { headBlock: 120, cursorBlock: 119 },
  reachability: null,
  gpus: [],
  tlsSha256: null,
};

const OFFER = {
  free: { cpuMillis: 1500, memoryBytes: 4 * 2 ** 30, diskBytes: 0, gpus: [{ model: 'NVIDIA H100', profile: null, memoryBytes: null, count: 2 }] },
} as unknown as Offer;

describe('the live summary of provider start', () => {
  it('says leases by state, what is free and the chain head in one line', () => {
    expect(summaryLine(STATUS, OFFER)).toBe('leases: 1 pulling, 2 running, 5 settled · free: 1500m CPU, 4.0 GiB memory, 2 GPUs · block 120');
  });

  it('flags a draining daemon and an unreachable Docker', () => {
    const line = summaryLine({ ...STATUS, accepting: false, docker: { reachable: false }, leases: { ...STATUS.leases, pulling: 0, running: 0, settled: 0 } }, OFFER);
    expect(line).toBe('leases: none yet · free: 1500m CPU, 4.0 GiB memory, 2 GPUs · block 120 · DOCKER UNREACHABLE · not taking new leases');
  });

  it('prints when leases or capacity change, not for a new block, and as a heartbeat every five minutes', async () => {
    let status = STATUS;
    const clock = manualClock(0);
    const printed: string[] = [];
    const summary = new LiveSummary({ status: async () => status, offer: async () => OFFER }, (line) => printed.push(line), clock);
    await summary.refresh();
    status = { ...STATUS, chain: { headBlock: 121, cursorBlock: 120 } };
    await summary.refresh();
    expect(printed).toHaveLength(1);
    status = { ...status, leases: { ...STATUS.leases, running: 3 } };
    await summary.refresh();
    expect(printed).toHaveLength(2);
    expect(printed[1]).toMatch(/3 running.*block 121$/);
    clock.set(5 * 60_000);
    await summary.refresh();
    expect(printed).toHaveLength(3);
  });
});
