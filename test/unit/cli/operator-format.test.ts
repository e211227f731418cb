import type { EarningsView, OperatorLeaseSummary } from '../../../src/api';
import { amount, formatEarnings, formatLeases, formatStatus, formatWithdraw } from '../../../src/cli/operator-format';

const aLease = (overrides: Partial<OperatorLeaseSummary> = {}): OperatorLeaseSummary => ({
  leaseId: '12',
  tenant: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC',
  state: 'settled',
  endReason: 'exited',
  image: 'busybox:1.36',
  container: 'provider-lease-p1-12',
  openedAt: 1_700_000_000,
  startedAt: 1_700_000_001,
  endedAt: 1_700_000_061,
  earned: 27_375_000n,
  lastCheckpoint: { seq: 3, status: 'final', final: true, countersigned: true },
  detail: null,
  ...overrides,
});

const PROVIDER = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
const PAYOUT = '0x90F79bf6EB2c4f870365E785982E1f101E93b906';

const NONE = { quoted: 0, pulling: 0, starting: 0, running: 0, stopping: 0, finishing: 0, settling: 0, settled: 0, failed: 0, rejected: 0 };

describe('operator output', () => {
  it('prints 18-decimal amounts as tokens and base units, anything else as base units', () => {
    expect(amount(1_500_000_000_000_000_000n, 18)).toBe('1.5 (1500000000000000000 base units)');
    expect(amount(0n, 18)).toBe('0 (0 base units)');
    expect(amount(27_375_000n, 18)).toBe('0.000000000027375 (27375000 base units)');
    expect(amount(1_500n, 6)).toBe('1500 base units');
    expect(amount(1_500n, null)).toBe('1500 base units');
  });

  it('lists leases as aligned columns, with no trailing blanks', () => {
    const text = formatLeases([aLease(), aLease({ leaseId: '13', state: 'running', endReason: null, image: null, endedAt: null, earned: 0n, lastCheckpoint: null })], 'daemon');
    expect(text).toBe(
      [
        'LEASE  STATE    IMAGE         TENANT       STARTED               ENDED                 END REASON  EARNED (base units)  CHECKPOINT',
        '12     settled  busybox:1.36  0x3C44…93BC  2023-11-14T22:13:21Z  2023-11-14T22:14:21Z  exited      27375000             #3 final (last), countersigned',
        '13     running  -             0x3C44…93BC  2023-11-14T22:13:21Z  -                     -           0                    -',
        '',
      ].join('\n'),
    );
  });

  it('says when leases come from the store, and when there are none', () => {
    expect(formatLeases([], 'store')).toBe('(the daemon is not running: from its store)\nno leases yet\n');
  });

  it('says the daemon is down, with the store it read, in status', () => {
    const text = formatStatus({ daemon: 'down', apiUrl: 'http://127.0.0.1:8420', store: '/var/lib/provider/store-1-abcd.sqlite', chainId: 1, marketplace: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512', provider: null, leases: { ...NONE, settled: 2, running: 1 } });
    expect(text).toContain('daemon  NOT running (nothing answers at http://127.0.0.1:8420); from its store\n');
    expect(text).toContain('store   /var/lib/provider/store-1-abcd.sqlite\n');
    expect(text).toContain('leases  1 running, 2 settled\n');
    expect(text).not.toMatch(/^provider/m);
  });

  it('says which path tenants reach the daemon by, whether it was verified, and the fix when there is none', () => {
    const base = {
      daemon: 'running' as const,
      apiUrl: 'http://127.0.0.1:8420',
      version: '0.1.0',
      provider: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
      chainId: 8453,
      devnet: false,
      accepting: true,
      startedAt: 1_700_000_000,
      leases: NONE,
      docker: { reachable: true },
      chain: { headBlock: 1, cursorBlock: 1 },
      gpus: [],
      tlsSha256: 'ab'.repeat(32),
    };
    const upnp = formatStatus({ ...base, reachability: { path: 'upnp', url: 'http://11.0.0.1:8420', verified: 'outside', detail: 'UPnP-IGD at 192.168.1.1 maps 11.0.0.1:8420 to this machine\'s port 8420', fix: null } });
    expect(upnp).toContain('reachable  upnp at http://11.0.0.1:8420: verified from outside\n');
    expect(upnp).toContain('UPnP-IGD at 192.168.1.1 maps');
    // The certificate tenants (and a browser on the LAN) should be shown, as openssl prints fingerprints.
    expect(upnp).toContain(`tls        sha256 ${Array(32).fill('AB').join(':')} (tenants and browsers should see this certificate)\n`);
    const none = formatStatus({ ...base, reachability: { path: 'none', url: 'http://127.0.0.1:8420', verified: 'failed', detail: 'no path found', fix: 'enable UPnP on the router' } });
    expect(none).toContain('reachable  NO PATH at http://127.0.0.1:8420: NOT reachable from outside\n');
    expect(none).toContain('fix: enable UPnP on the router\n');
  });

  it('prints a running daemon\'s status, marking the devnet and an unreachable Docker', () => {
    const text = formatStatus({
      daemon: 'running',
      apiUrl: 'http://127.0.0.1:8420',
      version: '0.1.0',
      provider: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
      chainId: 31337,
      devnet: true,
      accepting: true,
      startedAt: 1_700_000_000,
      leases: NONE,
      docker: { reachable: false },
      chain: { headBlock: null, cursorBlock: 7 },
      reachability: null,
      gpus: [],
      tlsSha256: null,
    });
    expect(text).toContain('chain      chain id 31337 (LOCAL DEVNET: tokens are worthless), RPC not answering, events handled to block 7\n');
    expect(text).toContain('docker     NOT reachable\n');
    expect(text).toContain('leases     none\n');
  });

  it('prints earnings with unknown chain figures when only the store was read', () => {
    const view: EarningsView = {
      provider: null,
      token: null,
      withdrawable: null,
      payout: null,
      claimedPending: 5n,
      withdrawn: 10n,
      balance: null,
      withdrawal: { key: 'withdraw:2', state: 'pending' },
      leases: [{ leaseId: '12', state: 'settled', earned: 20n, checkpoint: 'claimed', paid: 15n }],
    };
    const text = formatEarnings(view, 'store');
    expect(text).toContain('withdrawable  unknown (the daemon is down; the chain was not asked)\n');
    expect(text).toContain('payout        unknown (the daemon is down; the chain was not asked)\n');
    expect(text).toContain('claimed       5 base units  (claims waiting out the challenge window)\n');
    expect(text).toContain('withdrawal    withdraw:2 pending\n');
    expect(text).toContain('12     settled  20                   15                 claimed\n');
  });

  it('prints the payout address every withdrawal pays, from the chain, in earnings', () => {
    const view: EarningsView = {
      provider: PROVIDER,
      token: { address: '0x5FbDB2315678afecb367f032d93F642f64180aa3', decimals: 18, symbol: 'DCT' },
      withdrawable: 3n * 10n ** 18n,
      payout: PAYOUT,
      claimedPending: 0n,
      withdrawn: 0n,
      balance: 0n,
      withdrawal: null,
      leases: [],
    };
    expect(formatEarnings(view, 'daemon').split('\n').slice(0, 4)).toEqual([
      `provider      ${PROVIDER}`,
      `payout        ${PAYOUT}  (every withdrawal pays this address)`,
      'token         0x5FbDB2315678afecb367f032d93F642f64180aa3 (DCT, 18 decimals)',
      'withdrawable  3 (3000000000000000000 base units)  (finalised; `provider withdraw` pays it to the payout address)',
    ]);
  });

  it('says plainly when there is nothing to withdraw, and names the transaction and the payout address when there was', () => {
    const context = { decimals: 18, payout: PAYOUT };
    expect(formatWithdraw({ outcome: 'nothing', key: null, amount: 0n, txHash: null, error: null }, context)).toBe('nothing to withdraw: the marketplace holds no finalised earnings for this provider\n');
    const hash = `0x${'ab'.repeat(32)}`;
    expect(formatWithdraw({ outcome: 'confirmed', key: 'withdraw:1', amount: 2n * 10n ** 18n, txHash: hash, error: null }, context)).toBe(
      `withdrew 2 (2000000000000000000 base units) to ${PAYOUT}\n  transaction ${hash} (withdraw:1)\n`,
    );
    expect(formatWithdraw({ outcome: 'pending', key: 'withdraw:2', amount: 5n, txHash: null, error: null }, { decimals: null, payout: PAYOUT })).toBe(
      `withdrawal of 5 base units to ${PAYOUT} sent as withdraw:2; not confirmed yet\n  \`provider earnings\` shows it once it is\n`,
    );
    // The earnings view could not be read: the amount alone, no guessed address.
    expect(formatWithdraw({ outcome: 'confirmed', key: 'withdraw:3', amount: 7n, txHash: hash, error: null }, { decimals: null, payout: null })).toBe(
      `withdrew 7 base units\n  transaction ${hash} (withdraw:3)\n`,
    );
    expect(formatWithdraw({ outcome: 'reverted', key: 'withdraw:1', amount: 2n, txHash: hash, error: 'NothingToWithdraw()' }, { decimals: null, payout: null })).toContain('withdrawal reverted: NothingToWithdraw()');
  });
});
