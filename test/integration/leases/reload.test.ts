import { JsonRpcProvider } from 'ethers';
import { configSchema } from '../../../src/config';
import { Daemon } from '../../../src/daemon';
import { createLogger } from '../../../src/log';
import { systemClock } from '../../../src/util/clock';
import { execFileAsync } from '../../../src/util/exec';
import { ChainTenant, TOKEN, aManifest, removeDir, removeInstanceContainers, tempDataDir, testConfig, until } from './support';

jest.setTimeout(120_000);

let dataDir: string | undefined;
let daemon: Daemon | undefined;
let rpc: JsonRpcProvider | undefined;

afterEach(async () => {
  const instance = daemon?.info.instanceId;
  await daemon?.stop().catch(() => undefined);
  rpc?.destroy();
  await removeInstanceContainers(instance);
  removeDir(dataDir);
});

describe('a reload while quotes are out (in process: real Docker, real anvil)', () => {
  it('holds a quote already signed to the minimum deposit it was quoted under; new quotes get the new one', async () => {
    dataDir = tempDataDir('reload');
    const config = await testConfig(dataDir, { pricing: { minimumPerLease: '1000' } });
    const log = createLogger({ level: 'silent', format: 'json' });
    daemon = await Daemon.start({ config, log, env: {}, exec: execFileAsync, clock: systemClock, version: 'test' });
    rpc = new JsonRpcProvider(daemon.info.rpcUrl, daemon.info.chainId, { staticNetwork: true });
    const tenant = new ChainTenant(rpc, daemon.info.marketplace, daemon.info.token!);
    const manifest = aManifest({ command: ['sh', '-c', 'sleep 30'] }) as never;

    const before = await daemon.service.quote(tenant.wallet.address, manifest);
    const outcome = daemon.reload(configSchema.parse({ ...config, pricing: { ...config.pricing, minimumPerLease: (10n * TOKEN).toString() } }));
    expect(outcome.applied.map((c) => c.key)).toEqual(['pricing.minimumPerLease']);
    const after = await daemon.service.quote(tenant.wallet.address, manifest);

    const honoured = await tenant.open(before, TOKEN);
    const refused = await tenant.open(after, TOKEN);
    const state = (id: bigint) => daemon!.service.lease(id.toString(), tenant.wallet.address).then((v) => v.state);
    await until('the new-terms lease is refused', async () => (await state(refused)) === 'rejected', 30_000);
    await until('the old-terms lease runs', async () => (await state(honoured)) === 'running', 30_000);
  });
});
