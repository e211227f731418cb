import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Devnet, freePort } from '../../../src/devnet';
import { createLogger } from '../../../src/log';
import { createRpcProvider } from '../../../src/chain/rpc';
import { marketplaceAt, tokenAt } from '../../../src/chain/marketplace';
import { DEVNET_FUNDING } from '../../../src/devnet';

jest.setTimeout(90_000);

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'provider-devnet-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, log: createLogger({ level: 'info', format: 'json', destination }) };
}

async function devnet(port: number) {
  const { lines, log } = capture();
  const instance = new Devnet({ dataDir: dir, host: '127.0.0.1', port, chainId: 31337, blockTimeSeconds: 1, log });
  return { instance, lines };
}

describe('Devnet', () => {
  it('comes up from a clean data dir in seconds, and again from the used one with the same contracts', async () => {
    const port = await freePort();
    const first = await devnet(port);
    let started = Date.now();
    const info = await first.instance.start();
    const coldMs = Date.now() - started;
    try {
      expect(JSON.parse(first.lines[0]!).msg).toMatch(/LOCAL DEVNET/);
      expect(info.deployed).toBe(true);
      expect(coldMs).toBeLessThan(15_000);
      const rpc = createRpcProvider(info.rpcUrl, { chainId: info.chainId });
      const market = marketplaceAt(info.marketplaceAddress, rpc);
      expect((await market.read('token', [])).toLowerCase()).toBe(info.tokenAddress.toLowerCase());
      expect(await tokenAt(info.tokenAddress, rpc).read('balanceOf', [info.providerAddress])).toBe(DEVNET_FUNDING);
      expect(await tokenAt(info.tokenAddress, rpc).read('balanceOf', [info.tenantAddress])).toBe(DEVNET_FUNDING);
      rpc.destroy();
    } finally {
      await first.instance.stop();
    }
    expect(existsSync(first.instance.statePath)).toBe(true);
    expect(JSON.parse(readFileSync(first.instance.deploymentPath, 'utf8')).marketplaceAddress).toBe(info.marketplaceAddress);

    const second = await devnet(port);
    started = Date.now();
    const again = await second.instance.start();
    const warmMs = Date.now() - started;
    try {
      expect(again.deployed).toBe(false);
      expect(again.marketplaceAddress).toBe(info.marketplaceAddress);
      expect(warmMs).toBeLessThan(15_000);
      const rpc = createRpcProvider(again.rpcUrl, { chainId: again.chainId });
      expect(await tokenAt(again.tokenAddress, rpc).read('balanceOf', [again.tenantAddress])).toBe(DEVNET_FUNDING);
      rpc.destroy();
    } finally {
      await second.instance.stop();
    }
    process.stdout.write(`devnet cold start ${coldMs} ms, warm start ${warmMs} ms\n`);
  });

  it('redeploys when the chain state was lost', async () => {
    const port = await freePort();
    const { instance } = await devnet(port);
    rmSync(instance.statePath, { force: true });
    const info = await instance.start();
    try {
      expect(info.deployed).toBe(true);
    } finally {
      await instance.stop();
    }
  });
});
