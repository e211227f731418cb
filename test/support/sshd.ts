import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const sh = promisify(execFile);

/**
 * A stock OpenSSH server as issue 13's relay, for the tests that need a real one: the relay-tunnel
 * integration test runs it on loopback, the home-network e2e inside its relay namespace. Login is
 * by public key only, as root (these tests run as root), with TCP forwarding allowed.
 */

/**
 * ed25519 keys from ssh-keygen in `dir`: each of `hostKeys` and `client_key` (`<name>` and
 * `<name>.pub`), with client_key.pub written as the one authorized key.
 */
export async function makeSshKeys(dir: string, hostKeys: readonly string[] = ['host_key']): Promise<{ clientKey: string }> {
  for (const key of [...hostKeys, 'client_key']) await sh('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, key)]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
  chmodSync(join(dir, 'authorized_keys'), 0o600);
  return { clientKey: join(dir, 'client_key') };
}

/** A host key's public line, as reachability.relay.knownHostKey takes it. */
export function knownHostKey(dir: string, hostKey = 'host_key'): string {
  return readFileSync(join(dir, `${hostKey}.pub`), 'utf8').trim();
}

export interface SshdOptions {
  /** Where makeSshKeys put the keys; the config is written there too. */
  dir: string;
  listen: string;
  port: number;
  /** `no`: forwarded ports listen on the relay's loopback only; `clientspecified`: where the client asks. */
  gatewayPorts: 'no' | 'clientspecified';
  hostKey?: string;
  /** A command to run sshd under, such as nsenter into a namespace. */
  prefix?: readonly string[];
}

/** sshd in the foreground, resolved once it listens; rejected with what it said if it exits first. */
export async function startSshd(options: SshdOptions): Promise<ChildProcess> {
  const hostKey = options.hostKey ?? 'host_key';
  const config = join(options.dir, `sshd_config-${hostKey}`);
  writeFileSync(config, [
    `Port ${options.port}`, `ListenAddress ${options.listen}`, `HostKey ${join(options.dir, hostKey)}`, `AuthorizedKeysFile ${join(options.dir, 'authorized_keys')}`,
    'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PubkeyAuthentication yes', 'PermitRootLogin prohibit-password',
    'AllowTcpForwarding yes', `GatewayPorts ${options.gatewayPorts}`, 'StrictModes no', 'UsePAM no', 'PidFile none', '',
  ].join('\n'));
  // sshd insists on its privilege-separation directory, which Debian's unit creates at boot.
  mkdirSync('/run/sshd', { recursive: true });
  const command = [...(options.prefix ?? []), '/usr/sbin/sshd', '-D', '-e', '-f', config];
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let said = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not listen within 15 s: ${said}`)), 15_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes('Server listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited with ${code}: ${said}`));
    });
  });
  return child;
}
