import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import YAML from 'yaml';
import { createKeystore } from '../chain';
import { defaultConfigFile, defaultDataDir, loadConfig, parseScalar, type ProviderConfig } from '../config';
import { ProviderError } from '../errors';
import type { CliIo, GlobalOptions } from './context';
import { TerminalPrompter, type Prompter } from './prompter';

interface InitOptions {
  yes?: boolean;
  force?: boolean;
  network?: 'devnet' | 'custom';
  rpcUrl?: string;
  chainId?: string;
  marketplace?: string;
  region?: string;
  gpus?: string;
  cpuPrice?: string;
  gpuPrice?: string;
  memoryPrice?: string;
  egressPrice?: string;
  passwordFile?: string;
  apiPort?: string;
  scryptN?: string;
}

/** The example config, with its comments, is the template every written config starts from. */
const EXAMPLE = join(__dirname, '..', '..', 'config', 'provider.example.yaml');

export function registerInitCommand(program: Command, io: CliIo): void {
  program
    .command('init')
    .description('write a commented config and an encrypted provider key (asks on a terminal; --yes for fleets)')
    .option('-y, --yes', 'ask nothing: take flags, and defaults for everything else')
    .option('--force', 'overwrite an existing config file and keystore')
    .addOption(new Option('--network <network>', 'devnet (embedded local chain) or custom').choices(['devnet', 'custom']))
    .option('--rpc-url <url>', 'custom network: JSON-RPC URL')
    .option('--chain-id <id>', 'custom network: chain id')
    .option('--marketplace <address>', 'custom network: marketplace contract address')
    .option('--region <region>', 'region advertised to tenants')
    .option('--gpus <which>', 'GPUs to offer: all, none, or indices/UUIDs separated by commas')
    .option('--cpu-price <amount>', 'per CPU-second, token base units')
    .option('--gpu-price <amount>', 'per GPU-second, token base units')
    .option('--memory-price <amount>', 'per GiB of memory per second, token base units')
    .option('--egress-price <amount>', 'per GiB sent, token base units')
    .option('--api-port <port>', 'port of the provider API')
    .option('--password-file <file>', 'read the keystore password from this file (and have the daemon use it)')
    .addOption(new Option('--scrypt-n <n>', 'keystore scrypt cost (tests only)').hideHelp())
    .action(async (options: InitOptions, command: Command) => {
      const global = command.optsWithGlobals<GlobalOptions>();
      await runInit(io, global, options);
    });
}

interface Answers {
  dataDir: string;
  region: string;
  network: { rpcUrl: string; chainId: number; marketplaceAddress: string } | undefined;
  gpus: ProviderConfig['gpu']['offer'];
  prices: { perCpuSecond: string; perGpuSecond: string; perGiBMemorySecond: string; perGiBEgress: string };
  apiPort: number;
  passwordFile: string | undefined;
  password: string;
}

async function runInit(io: CliIo, global: GlobalOptions, options: InitOptions): Promise<void> {
  const say = (line = '') => io.stderr.write(`${line}\n`);
  const configFile = resolve(io.cwd, global.config ?? (io.env.PROVIDER_CONFIG || defaultConfigFile(io)));
  const interactive = !options.yes;
  if (interactive && !io.stdin?.isTTY && !io.prompter) {
    throw new ProviderError('USAGE', 'provider init asks questions, and standard input is not a terminal', {
      fix: 'run it in a terminal, or pass --yes with the values as flags (and --password-file)',
    });
  }
  const prompter: Prompter | undefined = interactive ? (io.prompter?.() ?? new TerminalPrompter(io.stdin as NodeJS.ReadableStream, io.stderr)) : undefined;

  try {
    const defaults = loadConfig({ env: {}, uid: io.uid, home: io.home, cwd: io.cwd, devnet: true }).config;
    const dataDir = resolve(io.cwd, global.dataDir ?? (prompter ? await prompter.ask('Data directory', defaultDataDir(io)) : defaultDataDir(io)));
    const keystorePath = join(dataDir, 'keystore.json');
    refuseToOverwrite([configFile, keystorePath], options.force === true);

    const answers = await gather(io, prompter, options, defaults, dataDir);
    const text = renderConfig(answers);
    // Validate what we are about to write exactly as the daemon will read it.
    const check = join(dataDir, '.provider-init-check.yaml');
    await mkdir(dataDir, { recursive: true, mode: 0o750 });
    await writeFile(check, text, { mode: 0o600 });
    try {
      loadConfig({ file: check, env: {}, uid: io.uid, home: io.home, cwd: io.cwd });
    } finally {
      await rm(check, { force: true });
    }

    if (options.force) await rm(keystorePath, { force: true });
    const scryptN = options.scryptN ? Number(options.scryptN) : undefined;
    const address = await createKeystore(keystorePath, answers.password, scryptN ? { scryptN } : {});
    await mkdir(dirname(configFile), { recursive: true });
    await writeFile(configFile, text, { mode: 0o640 });

    say();
    say(`provider address  ${address}`);
    say(`config            ${configFile}`);
    say(`keystore          ${keystorePath} (encrypted; keep a backup and the password)`);
    say(`network           ${answers.network ? `chain ${answers.network.chainId} via ${new URL(answers.network.rpcUrl).host}` : 'embedded local devnet (its dev provider key is used there; this key is for a real network)'}`);
    say();
    say('Next:');
    say(`  provider --config ${configFile} config check`);
    say(`  provider --config ${configFile} capacity`);
    if (!answers.passwordFile) {
      say(`  set PROVIDER_KEYSTORE_PASSWORD in the daemon's environment, or keystore.passwordFile in the config`);
    }
    if (answers.network) say(`  fund ${address} with gas and the bond before selling`);
    io.stdout.write(`${address}\n`);
  } finally {
    prompter?.close();
  }
}

function refuseToOverwrite(paths: readonly string[], force: boolean): void {
  const existing = paths.filter((path) => existsSync(path));
  if (existing.length > 0 && !force) {
    throw new ProviderError('INIT_WOULD_OVERWRITE', `refusing to overwrite ${existing.join(' and ')}`, {
      input: existing[0],
      fix: 'move it away first, or pass --force to replace it (an overwritten keystore is a lost key: back it up)',
    });
  }
}

async function gather(io: CliIo, prompter: Prompter | undefined, options: InitOptions, defaults: ProviderConfig, dataDir: string): Promise<Answers> {
  const ask = async (question: string, flag: string | undefined, fallback: string): Promise<string> =>
    flag ?? (prompter ? prompter.ask(question, fallback) : fallback);

  const networkChoice = (await ask('Network: devnet (local test chain) or custom', options.network, 'devnet')).toLowerCase();
  if (networkChoice !== 'devnet' && networkChoice !== 'custom') {
    throw new ProviderError('USAGE', `network "${networkChoice}": expected devnet or custom`, { fix: 'answer devnet or custom' });
  }
  let network: Answers['network'];
  if (networkChoice === 'custom') {
    const rpcUrl = await required(prompter, 'JSON-RPC URL', options.rpcUrl, '--rpc-url');
    const chainId = Number(await required(prompter, 'Chain id', options.chainId, '--chain-id'));
    const marketplaceAddress = await required(prompter, 'Marketplace contract address', options.marketplace, '--marketplace');
    network = { rpcUrl, chainId, marketplaceAddress };
  }
  const region = await ask('Region advertised to tenants', options.region, defaults.region);
  const gpusText = await ask('GPUs to offer (all, none, or indices/UUIDs separated by commas)', options.gpus, 'all');
  const prices = {
    perCpuSecond: await ask('Price per CPU-second (token base units)', options.cpuPrice, defaults.pricing.perCpuSecond),
    perGpuSecond: await ask('Price per GPU-second (token base units)', options.gpuPrice, defaults.pricing.perGpuSecond),
    perGiBMemorySecond: await ask('Price per GiB of memory per second (token base units)', options.memoryPrice, defaults.pricing.perGiBMemorySecond),
    perGiBEgress: await ask('Price per GiB sent (token base units)', options.egressPrice, defaults.pricing.perGiBEgress),
  };
  const apiPort = Number(await ask('API port', options.apiPort, String(defaults.api.port)));

  let password: string;
  let passwordFile: string | undefined;
  if (options.passwordFile) {
    passwordFile = resolve(io.cwd, options.passwordFile);
    password = readPasswordFile(passwordFile);
  } else if (prompter) {
    password = await prompter.askSecret('Keystore password');
    const again = await prompter.askSecret('Keystore password, again');
    if (password !== again) throw new ProviderError('USAGE', 'the two passwords differ', { fix: 'run provider init again' });
  } else {
    throw new ProviderError('USAGE', 'no keystore password: with --yes, name a file holding it', { fix: 'pass --password-file <file>' });
  }
  if (password.length < 8) {
    throw new ProviderError('USAGE', 'the keystore password is shorter than 8 characters', { fix: 'choose a longer password' });
  }
  return { dataDir, region, network, gpus: parseGpuOffer(gpusText), prices, apiPort, passwordFile, password };
}

async function required(prompter: Prompter | undefined, question: string, flag: string | undefined, name: string): Promise<string> {
  if (flag) return flag;
  const answer = prompter ? await prompter.ask(question) : '';
  if (!answer) throw new ProviderError('USAGE', `${question} is required for a custom network`, { fix: `pass ${name}` });
  return answer;
}

function readPasswordFile(file: string): string {
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/, 1)[0] ?? '';
  } catch (err) {
    throw new ProviderError('USAGE', `cannot read the password file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      fix: 'name a readable file whose first line is the password',
    });
  }
}

function parseGpuOffer(text: string): ProviderConfig['gpu']['offer'] {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === 'all' || trimmed === 'none') return trimmed;
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0)
    .map((item) => {
      const value = parseScalar(item);
      return typeof value === 'number' ? value : item;
    });
}

/** The example config with the answers set in place; its comments stay, so the file explains itself. */
function renderConfig(answers: Answers): string {
  const doc = YAML.parseDocument(readFileSync(EXAMPLE, 'utf8'));
  doc.commentBefore = ` provider configuration, written by \`provider init\`. Every key is explained below.\n${doc.commentBefore ?? ''}`;
  doc.setIn(['dataDir'], answers.dataDir);
  doc.setIn(['region'], answers.region);
  doc.setIn(['api', 'port'], answers.apiPort);
  doc.setIn(['gpu', 'offer'], answers.gpus);
  for (const [key, value] of Object.entries(answers.prices)) doc.setIn(['pricing', key], value);
  if (answers.passwordFile) doc.setIn(['keystore', 'passwordFile'], answers.passwordFile);
  if (answers.network) {
    doc.setIn(['network'], doc.createNode({ ...answers.network, confirmations: 2, pollIntervalMs: 2000, startBlock: 0 }));
  }
  return doc.toString({ lineWidth: 0 });
}

