import type { Command } from 'commander';
import type { CliIo } from '../context';
import { loadManifestFile, manifestJsonSchema } from './manifest-file';
import { toJson } from './session';

/** `provider tenant manifest schema|check`: the JSON Schema of a manifest file, and a check of one. */
export function registerManifestCommand(group: Command, io: CliIo): void {
  const manifest = group.command('manifest').description('lease manifests: their JSON Schema, and a check of a file');
  manifest
    .command('schema')
    .description('print the JSON Schema of a manifest file (for editors: yaml-language-server: $schema=...)')
    .action(() => {
      io.stdout.write(`${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
    });
  manifest
    .command('check')
    .description('check a manifest file and print it as the provider will receive it')
    .argument('<file>', 'the YAML manifest')
    .option('--image <ref>', 'replace the manifest\'s image')
    .action((file: string, options: { image?: string }) => {
      io.stdout.write(`${toJson(loadManifestFile(file, options.image ? { image: options.image } : {}))}\n`);
    });
}
