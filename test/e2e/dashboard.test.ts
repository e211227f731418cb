import { join } from 'node:path';
import type { JsonRpcProvider, Wallet } from 'ethers';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ZERO_BYTES32 } from '../../src/chain';
import type { TenantClient } from '../../src/tenant';
import { DaemonProcess, leaseSettlement, until } from './daemon-process';

jest.setTimeout(150_000);

/** Debian's chromium, never a downloaded browser; .ci/run installs it. */
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = join(__dirname, '..', '..', 'docs', 'dashboard.png');

const WORKLOAD = {
  image: 'provider-test/busybox:latest',
  // Long enough to read lines in the page while the container still runs.
  command: ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo dashboard line $i; sleep 1; done; echo finished >&2'],
  resources: { cpuMillis: 250, memoryBytes: 32 * 2 ** 20 },
  maxDurationSeconds: 120,
};

let daemon: DaemonProcess;
let tenant: { client: TenantClient; wallet: Wallet; rpc: JsonRpcProvider };
let browser: Browser;
let page: Page;
let launching: Promise<Browser> | undefined;
/** Every URL the page asked for, and every error it logged (a CSP refusal is one). */
const requested: string[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  daemon = await DaemonProcess.create('dashboard');
  // Kept even when the daemon fails to start, so afterAll closes it and jest can exit.
  launching = chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  const [ready, launched] = await Promise.all([daemon.start(), launching]);
  browser = launched;
  tenant = daemon.tenant();
  page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.on('request', (request) => requested.push(request.url()));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  expect(ready.apiUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
});

afterAll(async () => {
  await launching?.then((launched) => launched.close(), () => undefined);
  tenant?.rpc.destroy();
  await daemon?.cleanup();
});

describe('the dashboard in a real browser (Debian chromium) against a devnet daemon', () => {
  it('shows the provider, a running lease and its streaming logs, and the payment on the earnings chart after settlement', async () => {
    const { provider, marketplace } = daemon.ready!;
    // The operator port: plain HTTP on loopback, so the browser has no certificate to doubt.
    const operatorUrl = daemon.operatorUrl();
    const response = await page.goto(`${operatorUrl}/dashboard`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()['content-type']).toBe('text/html; charset=utf-8');
    expect(response?.headers()['content-security-policy']).toContain("default-src 'none'");
    // Locators, not page functions: the page's CSP refuses the eval playwright's functions need.
    await page.locator('#provider', { hasText: provider }).waitFor({ timeout: 20_000 });
    expect(await page.textContent('#state')).toBe('accepting leases');
    // How tenants reach it: on the devnet, the listen address (TLS), nothing to prove from outside.
    await page.locator('#status', { hasText: `local at ${daemon.ready!.apiUrl}: local only` }).waitFor({ timeout: 10_000 });

    const { client } = tenant;
    const { leaseId } = await client.open(await client.quote(WORKLOAD), 10n ** 17n);
    const id = leaseId.toString();
    await page.waitForSelector(`#leases tr[data-lease="${id}"][data-state="running"]`, { timeout: 60_000 });
    await page.click(`#leases tr[data-lease="${id}"]`);
    await page.locator('#logs', { hasText: 'dashboard line 3' }).waitFor({ timeout: 20_000 });
    // Lines arrive while the container still runs: streamed, not read after the end.
    expect((await client.lease(leaseId)).state).toBe('running');

    const final = await until('the final checkpoint', async () => {
      const last = (await client.usage(leaseId)).checkpoints.at(-1);
      return last && last.checkpoint.resultDigest !== ZERO_BYTES32 ? last : undefined;
    }, 60_000, 200);
    await client.countersign(leaseId, final.seq);
    await until('settled', async () => (await client.lease(leaseId)).state === 'settled', 60_000, 500);
    const settlement = await leaseSettlement(tenant.rpc, marketplace, leaseId);
    expect(settlement?.paid).toBe(final.checkpoint.cumulativeAmount);
    expect(settlement!.paid > 0n).toBe(true);

    // The chart's paid series ends at what the chain paid; the lease row and the log show the end.
    await page.waitForSelector(`#earnings-chart[data-paid="${settlement!.paid}"]`, { timeout: 20_000 });
    await page.waitForSelector(`#leases tr[data-lease="${id}"][data-state="settled"]`, { timeout: 20_000 });
    expect(await page.getAttribute('#earnings-chart', 'data-earned')).toBe(final.checkpoint.cumulativeAmount.toString());
    expect(await page.locator('#earnings-chart canvas').count()).toBe(1);
    expect(await page.getAttribute('#lease-chart', 'data-leases')).toBe('1');
    const logs = (await page.textContent('#logs')) ?? '';
    expect(logs).toContain('dashboard line 12\nfinished\n— end of log');
    expect(await page.textContent('#transitions')).toContain('settling → settled');

    await page.keyboard.press('Home');
    await page.screenshot({ path: SCREENSHOT });

    // Everything came from the daemon itself, and nothing on the page failed (CSP refusals included).
    expect(requested.filter((url) => !url.startsWith(`${operatorUrl}/`))).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
