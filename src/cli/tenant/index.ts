import type { Command } from 'commander';
import type { CliIo } from '../context';
import { registerAccessCommands } from './access-commands';
import { registerDeployCommand } from './deploy-command';
import { registerLeaseCommands } from './lease-commands';
import { registerManifestCommand } from './manifest-command';
import { registerProvidersCommand } from './providers-command';
import { addTenantGroupOptions } from './session';

/** Adds one or more subcommands to the `provider tenant` group (which carries the shared key, RPC and --json options). */
export type TenantCommandRegistration = (group: Command, io: CliIo) => void;

/** The group's subcommands, in help order; another is one more entry here. */
export const TENANT_COMMANDS: readonly TenantCommandRegistration[] = [
  registerProvidersCommand,
  registerDeployCommand,
  registerLeaseCommands,
  registerAccessCommands,
  registerManifestCommand,
];

/**
 * `provider tenant ...`: renting from providers, the tenant's side of the protocol. Every command
 * reads the same group options (`--json`, the key, `--rpc-url`) through `openTenantEnv`.
 */
export function registerTenantCommand(program: Command, io: CliIo, extra: readonly TenantCommandRegistration[] = []): Command {
  const group = addTenantGroupOptions(program.command('tenant').description('rent compute as a tenant: find providers, deploy a manifest, follow, verify and pay a lease'));
  for (const register of [...TENANT_COMMANDS, ...extra]) register(group, io);
  overrideExits(group, program);
  return group;
}

/** Commander exits the process on a usage error unless told not to, at every level (`tenant manifest schema`). */
function overrideExits(parent: Command, program: Command): void {
  for (const command of parent.commands) {
    command.exitOverride().configureOutput(program.configureOutput());
    overrideExits(command, program);
  }
}

export { openTenantEnv, withTenantEnv, leaseClient, parseLeaseId, toJson, type TenantEnv } from './session';
export { loadManifestFile, parseManifestText, manifestJsonSchema } from './manifest-file';
