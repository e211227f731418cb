import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDispute } from '../../../src/cli/dispute-command';
import { deadPort, offDevnetConfig, runCli, tempDir } from '../../support/cli-io';

const KEY = `0x${'5d'.repeat(32)}`;

describe('provider dispute (command line)', () => {
  it.each([
    [['dispute', 'twelve'], 'provider: lease id twelve: expected a lease id'],
    [['dispute', '-1'], 'provider: lease id -1: expected a lease id'],
    [['dispute', `${2n ** 256n}`], 'a lease id fits in 256 bits'],
    [['dispute'], "error: missing required argument 'leaseId'"],
    [['dispute', '1', '--api-url', 'localhost'], 'provider: --api-url: '],
    [['dispute', '1', '--rpc-url', 'not a url'], 'provider: --rpc-url: '],
  ])('refuses %j before doing anything (exit 2)', async (args, said) => {
    const run = await runCli(['--data-dir', tempDir(), ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(said);
    expect(run.stdout).toBe('');
  });

  it('off the devnet, refuses to run without the tenant\'s key file and says what to pass', async () => {
    const { file } = await offDevnetConfig();
    const run = await runCli(['--config', file, 'dispute', '7']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('provider: off the devnet, a dispute is sent by the lease\'s tenant');
    expect(run.stderr).toMatch(/fix: pass --tenant-key-file <file> with the private key of a tenant account/);
  });

  it('refuses a key file that holds no key with its code and fix, without echoing what it holds (exit 1)', async () => {
    const { file, dir } = await offDevnetConfig();
    const keyFile = join(dir, 'tenant.key');
    writeFileSync(keyFile, 'my secret passphrase\n');
    const run = await runCli(['--config', file, 'dispute', '7', '--tenant-key-file', keyFile]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`provider dispute: TENANT_KEY_INVALID: ${keyFile} does not hold a private key`);
    expect(run.stderr).toContain('  fix: write the tenant\'s private key');
    expect(run.stderr).not.toContain('passphrase');
  });

  it('with no daemon on this machine, says nothing answers and how to fix it (exit 1)', async () => {
    const { file, dir } = await offDevnetConfig();
    const keyFile = join(dir, 'tenant.key');
    writeFileSync(keyFile, `${KEY.slice(2)}\n`);
    const run = await runCli(['--config', file, '--log-level', 'silent', 'dispute', '7', '--tenant-key-file', keyFile]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    // The provider's certificate pin is read from the chain first, and this config's RPC is dead.
    expect(run.stderr).toMatch(/^provider dispute: TLS_PIN_MISSING: cannot read the certificate pin of https:\/\/127\.0\.0\.1:\d+ from the chain: /);
    expect(run.stderr).toContain('  fix: check that the chain\'s RPC endpoint answers');
  });

  it('on the devnet, speaks as the dev tenant, and reports the error as JSON with --json', async () => {
    const apiPort = await deadPort();
    const run = await runCli(['--data-dir', tempDir(), '--log-level', 'silent', '--set', `api.port=${apiPort}`, 'dispute', '12', '--json']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({
      outcome: 'error',
      leaseId: '12',
      // On the devnet the marketplace (where the pin is registered) is the one the daemon deployed: none yet.
      code: 'STORE_NOT_FOUND',
      message: expect.stringContaining('the daemon has not run with this config'),
      fix: expect.stringContaining('provider start'),
    });
  });

  it('names another provider\'s API it cannot reach without blaming the local daemon', async () => {
    const url = `http://127.0.0.1:${await deadPort()}`;
    const run = await runCli(['--data-dir', tempDir(), '--log-level', 'silent', 'dispute', '12', '--api-url', url]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`provider dispute: PROVIDER_UNREACHABLE: GET /v1/offer: `);
    expect(run.stderr).toContain('  fix: check the provider API URL and that it is up\n');
  });
});

describe('formatDispute', () => {
  it('says there is nothing to dispute, with the records and the amount verified', () => {
    expect(formatDispute(5n, { filed: false, checkpoint: 3, records: 12, total: 27_375_000n })).toBe(
      'nothing to dispute: 12 records, 27375000 base units verified\n  lease 5, checkpoint #3: its total is its records\' total, and it may be countersigned\n',
    );
  });

  it('names the fault, the evidence and the transaction of a dispute filed', () => {
    const hash = `0x${'cd'.repeat(32)}`;
    expect(formatDispute(5n, { filed: true, checkpoint: 2, fault: 'AmountMismatch', evidence: 'record', txHash: hash })).toBe(
      `disputed lease 5: AmountMismatch (evidence: record, against checkpoint #2)\n  transaction ${hash}\n`,
    );
  });
});
