
import { join } from 'node:path';
import { manifestJsonSchema, parseManifestText } from '../../../../src/cli/tenant';
import { manifestSchema } from '../../../../src/runtime';
import { readFileSync, writeFileSync } from 'node:fs';
import { offDevnetConfig, runCli, tempDir } from '../../../support/cli-io';

const EXAMPLE = join(__dirname, '..', '..', '..', '..', 'examples', 'hello.yaml');

describe('tenant manifest files', () => {
  it('reads the commented example as a valid manifest for the local test image', () => {
    const manifest = parseManifestText(readFileSync(EXAMPLE, 'utf8'), 'hello.yaml');
    expect(manifest.image).toBe('provider-test/busybox:latest');
    expect(manifest.resources).toMatchObject({ cpuMillis: 250, memoryBytes: 64 * 2 ** 20, gpus: { count: 0 } });
    expect(manifest.maxDurationSeconds).toBe(300);
    expect(manifestSchema.parse(manifest)).toEqual(manifest);
  });

  it('takes sizes and durations as text, and --image over the file\'s image', () => {
    const manifest = parseManifestText('image: a/b:1\nresources: {cpuMillis: 500, memoryBytes: 1GiB, shmBytes: 64MiB}\nmaxDurationSeconds: 2h\n', 'm.yaml', { image: 'c/d:2' });
    expect(manifest).toMatchObject({ image: 'c/d:2', resources: { memoryBytes: 2 ** 30, shmBytes: 64 * 2 ** 20 }, maxDurationSeconds: 7_200 });
  });

  it('refuses what the protocol refuses, naming the field and the file', () => {
    expect(() => parseManifestText('image: a/b:1\nresources: {cpuMillis: 500, memoryBytes: 64MiB}\nmaxDurationSeconds: 60\nprivileged: true\n', 'bad.yaml')).toThrow(
      expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringMatching(/^bad\.yaml: .*not allowed: privileged/) }),
    );
    expect(() => parseManifestText('image: a/b:1\nresources: {cpuMillis: 500, memoryBytes: lots}\nmaxDurationSeconds: 60\n', 'bad.yaml')).toThrow(
      expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringContaining('resources.memoryBytes') }),
    );
  });

  it('refuses a file that is not YAML, or not a mapping', () => {
    expect(() => parseManifestText('image: [unclosed', 'x.yaml')).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringContaining('not valid YAML') }));
    expect(() => parseManifestText('- a\n- b\n', 'x.yaml')).toThrow(expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringContaining('must hold a mapping') }));
  });

  it('has a JSON Schema, from the zod schema, that forbids unknown keys and takes text sizes', () => {
    const schema = manifestJsonSchema() as { type: string; required: string[]; additionalProperties: boolean; properties: Record<string, { properties?: Record<string, { anyOf?: { type?: string; pattern?: string }[] }> }> };
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(expect.arrayContaining(['image', 'resources', 'maxDurationSeconds']));
    expect(schema.additionalProperties).toBe(false);
    const memory = schema.properties.resources?.properties?.memoryBytes?.anyOf ?? [];
    const text = memory.find((s) => s.type === 'string');
    expect(new RegExp(text?.pattern ?? '$^').test('64MiB')).toBe(true);
    expect(new RegExp(text?.pattern ?? '$^').test('lots')).toBe(false);
  });

  it('prints the schema with `provider tenant manifest schema`', async () => {
    const run = await runCli(['tenant', 'manifest', 'schema']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ title: 'Lease manifest', type: 'object' });
  });
});

describe('provider tenant (command line)', () => {
  it.each([
    [['tenant', 'status', 'twelve'], 'provider: lease id twelve: expected a lease id'],
    [['tenant', 'logs', `${2n ** 256n}`], 'a lease id fits in 256 bits'],
    [['tenant', 'deploy'], "error: missing required argument 'manifest'"],
    [['tenant', 'manifest', 'check'], "error: missing required argument 'file'"],
    [['tenant', 'providers', '--sort', 'colour'], 'provider: --sort: '],
    [['tenant', 'usage', '1', '--api-url', 'localhost'], 'provider: --api-url: '],
    [['tenant', 'leases', '--rpc-url', 'not a url'], 'provider: --rpc-url: '],
  ])('refuses %j before doing anything (exit 2)', async (args, said) => {
    const run = await runCli(['--data-dir', tempDir(), ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(said);
    expect(run.stdout).toBe('');
  });

  it('off the devnet, asks for the tenant\'s key and says how to give it (exit 2)', async () => {
    const { file } = await offDevnetConfig();
    const run = await runCli(['--config', file, 'tenant', 'leases']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('pass --keystore <file> or --key-file <file>');
  });

  it('on the devnet before its first start, says to start the provider first (exit 1)', async () => {
    const run = await runCli(['--data-dir', tempDir(), 'tenant', 'leases']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('fix: start the provider on the devnet first');
  });

  it('refuses a manifest file that is not there, or not a manifest, with the file named', async () => {
    const missing = await runCli(['--data-dir', tempDir(), 'tenant', 'deploy', '/nonexistent/m.yaml']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read the manifest /nonexistent/m.yaml');
    const dir = tempDir();
    writeFileSync(join(dir, 'm.yaml'), 'image: UPPER/Case\nresources: {cpuMillis: 100, memoryBytes: 64MiB}\nmaxDurationSeconds: 60\n');
    const bad = await runCli(['--data-dir', dir, 'tenant', 'manifest', 'check', join(dir, 'm.yaml')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${join(dir, 'm.yaml')}: manifest refused: image: expected an image reference`);
  });
});
