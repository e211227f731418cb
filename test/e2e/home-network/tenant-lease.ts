/**
 * A tenant on the internet (run inside the pvr-inet namespace by home-network.test.ts): it finds
 * the provider the way any tenant does, by its on-chain registration, and runs a whole lease
 * through the URL registered there: quote, open, logs, usage, countersign, payment on chain.
 * Prints one JSON line with what it saw; the test judges it.
 * usage: tsx tenant-lease.ts '{"rpcUrl":..,"chainId":..,"marketplace":..,"provider":..,"tenantKey":..}'
 */
import { Wallet } from 'ethers';
import { ZERO_BYTES32, createRpcProvider, marketplaceAt } from '../../../src/chain';
import { TenantClient } from '../../../src/tenant';
import { until } from '../../support/until';
import { leaseSettlement } from '../daemon-process';

interface Args {
  rpcUrl: string;
  chainId: number;
  marketplace: string;
  provider: string;
  tenantKey: string;
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  const rpc = createRpcProvider(args.rpcUrl, { chainId: args.chainId, pollingIntervalMs: 250 });
  try {
    const registration = (await marketplaceAt(args.marketplace, rpc).read('getProvider', [args.provider])) as unknown as { apiUrl: string; metadata: string };
    // Everything below goes to the registered URL, pinned to the certificate in the registered
    // metadata: the tenant knows nothing else about where the provider is.
    const client = new TenantClient({ signer: new Wallet(args.tenantKey, rpc), apiUrl: registration.apiUrl, chainId: args.chainId, chain: rpc, marketplace: args.marketplace, provider: args.provider });
    const operatorRoute = await client.transport.fetch(`${registration.apiUrl}/v1/status`, { method: 'GET', signal: AbortSignal.timeout(10_000) }).then((r) => r.status, (err: Error) => err.message);
    const quote = await client.quote({
      image: 'provider-test/busybox:latest',
      command: ['sh', '-c', 'for i in 1 2 3; do echo tick $i; sleep 1; done'],
      resources: { cpuMillis: 300, memoryBytes: 32 * 2 ** 20 },
      maxDurationSeconds: 300,
    });
    const deposit = 10n ** 18n;
    const { leaseId } = await client.open(quote, deposit);
    const logs: string[] = [];
    await until('running', async () => ['running', 'finishing', 'settling', 'settled'].includes((await client.lease(leaseId)).state), 60_000);
    for await (const entry of client.logs(leaseId, { follow: true })) logs.push(entry.line);
    const { view, last } = await until('the final checkpoint', async () => {
      const usage = await client.usage(leaseId);
      const cp = usage.checkpoints.at(-1);
      return cp && cp.checkpoint.resultDigest !== ZERO_BYTES32 ? { view: usage, last: cp } : undefined;
    }, 60_000, 250);
    const verified = await client.verifyUsage(view, leaseId);
    const countersigned = await client.countersign(leaseId, last.seq);
    const settled = await until('settled', async () => {
      const lease = await client.lease(leaseId);
      return lease.state === 'settled' ? lease : undefined;
    }, 90_000, 500);
    const onChain = await until('LeaseSettled on chain', () => leaseSettlement(rpc, args.marketplace, leaseId), 30_000, 500);
    process.stdout.write(`${JSON.stringify({
      apiUrl: registration.apiUrl,
      operatorRoute,
      leaseId: leaseId.toString(),
      logs,
      verifiedTotal: verified.total.toString(),
      cumulative: last.checkpoint.cumulativeAmount.toString(),
      countersigned: countersigned.tenantSignature !== null,
      endReason: settled.endReason,
      paid: onChain.paid.toString(),
      refund: onChain.refund.toString(),
      deposit: deposit.toString(),
    })}\n`);
  } finally {
    rpc.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
