import { createServer } from 'node:net';
import type Docker from 'dockerode';
import type { JsonRpcProvider, Wallet } from 'ethers';
import { formatEther } from 'ethers';
import type { CapacityReport } from '../capacity';
import { keystoreSettings, loadKeystore, marketplaceAt, tokenAt, type Env } from '../chain';
import type { ProviderConfig } from '../config';
import { describeError, isProviderError } from '../errors';
import { formatBytes } from '../util/bytes';
import type { Clock } from '../util/clock';
import { withTimeout } from '../util/with-timeout';
import { operatorPortOf } from '../api';
import type { RegistrationSource } from './tls-checks';
import { PinnedTransport } from '../tenant';
import { readCertificateInfo } from '../tls';
import type { ReachabilityProbes } from './reachability';
import { testGpuPassthrough } from './gpu-passthrough-test';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  id: string;
  status: CheckStatus;
  /** What was found, as one line. */
  detail: string;
  /** What to do about a warn or fail. */
  fix: string | null;
}

export interface DoctorContext {
  config: ProviderConfig;
  capacity: CapacityReport;
  docker: Docker;
  env: Env;
  clock: Clock;
  /** Image for the GPU passthrough test; the NVIDIA hook puts nvidia-smi into any image. */
  gpuTestImage: string;
  /** JSON-RPC of the configured network; undefined on the devnet. */
  rpc: JsonRpcProvider | undefined;
  fetch: typeof fetch;
  timeoutMs: number;
  /** On the devnet, where the running daemon's registration is read (its chain runs with it); undefined when it is down. */
  devnetRegistration?: () => Promise<RegistrationSource | undefined>;
  /** How tenants reach the API: the daemon's answer, or what a start would find (reachability.ts). */
  reachability?: ReachabilityProbes;
}

const pass = (id: string, detail: string): CheckResult => ({ id, status: 'pass', detail, fix: null });
const warn = (id: string, detail: string, fix: string | null): CheckResult => ({ id, status: 'warn', detail, fix });
const fail = (id: string, detail: string, fix: string | null): CheckResult => ({ id, status: 'fail', detail, fix });
const skip = (id: string, detail: string): CheckResult => ({ id, status: 'skip', detail, fix: null });

/** A disk this small fills with a few images: worth a warning even above the reserve. */
const COMFORTABLE_FREE_DISK = 20 * 2 ** 30;
/** Enough native currency for a few dozen claims on an L2; below it, warn. */
const LOW_GAS_WEI = 5n * 10n ** 15n;
const CLOCK_WARN_SECONDS = 60;
const CLOCK_FAIL_SECONDS = 300;

export function checkDocker(ctx: DoctorContext): CheckResult {
  const docker = ctx.capacity.docker;
  if (!docker.ok) return fail('docker', docker.reason, docker.fix);
  return pass('docker', `Docker ${docker.engineVersion ?? '?'} (API ${docker.apiVersion ?? '?'}) at ${ctx.config.docker.socketPath}`);
}

export function checkCgroup(ctx: DoctorContext): CheckResult {
  const docker = ctx.capacity.docker;
  if (!docker.ok) return skip('cgroup', 'Docker is not reachable');
  if (docker.cgroupVersion === null) {
    return warn('cgroup', 'the engine does not report its cgroup version (Docker older than 20.10)', 'upgrade Docker to 20.10 or later');
  }
  return pass('cgroup', `cgroup v${docker.cgroupVersion} (${docker.cgroupDriver ?? 'unknown driver'})`);
}

/**
 * Which runtime leases will use, and why. Warns when strangers' code would run under runc alone
 * (auto, no runsc registered), fails when runtime.sandbox asks for a runsc Docker lacks.
 */
export function checkSandbox(ctx: DoctorContext): CheckResult {
  const docker = ctx.capacity.docker;
  if (!docker.ok) return skip('sandbox', 'Docker is not reachable');
  const { sandbox } = docker;
  if (sandbox.cpuLeases === null) return fail('sandbox', sandbox.why, sandbox.fix);
  if (sandbox.warning !== null) return warn('sandbox', `${sandbox.why}: ${sandbox.warning}`, sandbox.fix);
  return pass('sandbox', sandbox.why);
}

export async function checkGpuPassthrough(ctx: DoctorContext): Promise<CheckResult> {
  const gpus = ctx.capacity.gpus;
  if (!gpus.ok) {
    if (gpus.code === 'NVIDIA_SMI_NOT_FOUND') return skip('gpu-passthrough', 'no NVIDIA driver on this machine: it sells CPU only');
    return fail('gpu-passthrough', `GPUs cannot be read: ${gpus.reason}`, gpus.fix);
  }
  if (gpus.devices.length === 0) return skip('gpu-passthrough', 'nvidia-smi lists no GPU');
  if (ctx.config.gpu.offer === 'none') return skip('gpu-passthrough', 'gpu.offer is none: no GPU is offered');
  if (!ctx.capacity.docker.ok) return skip('gpu-passthrough', 'Docker is not reachable');
  const offered = ctx.capacity.allocatable.gpus[0];
  const uuid = offered?.uuid ?? gpus.devices[0]?.uuid;
  if (!uuid) return skip('gpu-passthrough', 'no GPU UUID to test with');
  return runGpuContainer(ctx, uuid);
}

/** `nvidia-smi -L` in a throwaway container (see testGpuPassthrough). */
async function runGpuContainer(ctx: DoctorContext, uuid: string): Promise<CheckResult> {
  const verdict = await testGpuPassthrough(ctx.docker, { image: ctx.gpuTestImage, uuid, gpu: ctx.config.gpu, timeoutMs: ctx.timeoutMs * 3 });
  if (verdict.ok) return pass('gpu-passthrough', verdict.detail);
  return fail('gpu-passthrough', verdict.detail, verdict.gpusBroken ? verdict.fix : `${verdict.fix ?? ''}, or pass --gpu-test-image`);
}

/** Each GPU's health by gpu.health's rules, from the capacity read. */
export function checkGpuHealth(ctx: DoctorContext): CheckResult {
  const lines = ctx.capacity.gpuHealth;
  if (!lines || lines.length === 0) return skip('gpu-health', 'no GPU was read');
  const sick = lines.filter((line) => !line.healthy);
  if (sick.length === 0) return pass('gpu-health', `${lines.length} GPU(s) healthy (ECC, pending retirement, throttling, temperature)`);
  return warn(
    'gpu-health',
    sick.map((line) => `GPU ${line.index} (${line.uuid}) unhealthy: ${line.reason}`).join('; '),
    'the daemon keeps an unhealthy GPU off sale until it reads healthy for gpu.health.recoverAfterSeconds; a reset (`nvidia-smi -r -i <index>`, with nothing running on it) clears pending retirements',
  );
}

export function checkDisk(ctx: DoctorContext): CheckResult {
  const disk = ctx.capacity.disk;
  if (!disk.ok) return fail('disk', disk.reason, disk.fix);
  const reserve = ctx.config.reserve.diskBytes;
  const where = `${formatBytes(disk.freeBytes)} free on ${disk.mount} (data dir ${disk.dataDir})`;
  if (disk.freeBytes <= reserve) {
    return fail('disk', `${where}, not more than the reserve of ${formatBytes(reserve)}`, 'free space on that filesystem, move dataDir, or lower reserve.diskBytes');
  }
  if (disk.freeBytes - reserve < COMFORTABLE_FREE_DISK) {
    return warn('disk', `${where}: ${formatBytes(disk.freeBytes - reserve)} above the reserve`, 'leases and their images need room: free more space');
  }
  return pass('disk', where);
}

export async function checkApiPort(ctx: DoctorContext): Promise<CheckResult> {
  const { host, port } = ctx.config.api;
  const bound = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    server.listen(port, host, () => server.close(() => resolve(undefined)));
  });
  if (!bound) return pass('api-port', `${host}:${port} is free`);
  if (bound.code === 'EADDRINUSE') {
    // The public port speaks TLS; the daemon's plain operator listener says whether it is ours.
    const ours = await ctx
      .fetch(`http://127.0.0.1:${operatorPortOf(ctx.config)}/healthz`, { signal: AbortSignal.timeout(Math.min(ctx.timeoutMs, 2_000)) })
      .then((res) => res.ok)
      .catch(() => false);
    if (ours) return pass('api-port', `${host}:${port} is served by a running provider daemon`);
    return fail('api-port', `${host}:${port} is in use by another program`, 'stop that program or set api.port to a free port');
  }
  return fail('api-port', `cannot listen on ${host}:${port}: ${bound.code ?? bound.message}`, 'pick a port above 1024 or an address this host has (api.host)');
}

/** GET healthz; over https pinned to this machine's own certificate (no CA would vouch for a self-signed one). */
export async function healthzOf(ctx: DoctorContext, url: string, healthz: string): Promise<Response> {
  if (!url.startsWith('https:')) return ctx.fetch(healthz, { signal: AbortSignal.timeout(ctx.timeoutMs) });
  const own = readCertificateInfo(ctx.config);
  const transport = new PinnedTransport(url, own?.info.sha256);
  try {
    return await transport.fetch(healthz, { method: 'GET', signal: AbortSignal.timeout(ctx.timeoutMs) });
  } finally {
    transport.close();
  }
}

export interface ChainFacts {
  rpcOk: boolean;
  wallet: Wallet | undefined;
}

export async function checkChain(ctx: DoctorContext, facts: ChainFacts): Promise<CheckResult[]> {
  const network = ctx.config.network;
  if (!network || !ctx.rpc) {
    return [skip('chain-rpc', 'embedded local devnet: `provider start` runs it'), skip('chain-id', 'devnet'), skip('contract', 'devnet: deployed at start')];
  }
  const rpc = ctx.rpc;
  let head: number;
  try {
    head = await withTimeout('the RPC', ctx.timeoutMs, () => rpc.getBlockNumber());
  } catch (err) {
    return [
      fail('chain-rpc', `the RPC does not answer: ${describeError(err)}`, 'check network.rpcUrl and that this machine can reach it'),
      skip('chain-id', 'the RPC does not answer'),
      skip('contract', 'the RPC does not answer'),
    ];
  }
  facts.rpcOk = true;
  const results = [pass('chain-rpc', `the RPC answers: block ${head}`)];
  // The provider objects pin the configured chain id; ask the node itself.
  const chainId = Number(BigInt((await rpc.send('eth_chainId', [])) as string));
  results.push(
    chainId === network.chainId
      ? pass('chain-id', `chain id ${chainId}`)
      : fail('chain-id', `the RPC serves chain ${chainId}, the config says ${network.chainId}`, 'point network.rpcUrl at the right chain, or correct network.chainId'),
  );
  const code = await rpc.getCode(network.marketplaceAddress);
  results.push(
    code !== '0x'
      ? pass('contract', `marketplace contract at ${network.marketplaceAddress}`)
      : fail('contract', `no contract at ${network.marketplaceAddress} on chain ${chainId}`, 'check network.marketplaceAddress'),
  );
  return results;
}

export async function checkKey(ctx: DoctorContext, facts: ChainFacts): Promise<CheckResult> {
  const settings = keystoreSettings(ctx.config.keystore, ctx.config.dataDir);
  try {
    facts.wallet = await loadKeystore(settings, ctx.env);
    return pass('key', `${settings.path} unlocks: provider ${facts.wallet.address}`);
  } catch (err) {
    if (!ctx.config.network && isProviderError(err, 'KEYSTORE_NOT_FOUND')) {
      return skip('key', 'devnet: the dev provider key is used; `provider init` makes a key for a real network');
    }
    if (isProviderError(err)) return fail('key', err.message, err.fix ?? null);
    return fail('key', describeError(err), null);
  }
}

export async function checkAccount(ctx: DoctorContext, facts: ChainFacts): Promise<CheckResult[]> {
  const network = ctx.config.network;
  if (!network || !ctx.rpc) return [skip('balance', 'devnet: the dev accounts are funded at start'), skip('registered', 'devnet: registered at start')];
  if (!facts.rpcOk || !facts.wallet) return [skip('balance', 'needs the RPC and the key'), skip('registered', 'needs the RPC and the key')];
  const address = facts.wallet.address;
  const market = marketplaceAt(network.marketplaceAddress, ctx.rpc);
  const [gas, info, minBond, tokenAddress] = await Promise.all([
    ctx.rpc.getBalance(address),
    market.read('getProvider', [address]),
    market.read('minBond', []),
    market.read('token', []),
  ]);
  const tokens = await tokenAt(tokenAddress, ctx.rpc).read('balanceOf', [address]);
  const status = Number(info.status);
  const registered = status === 1;
  const results: CheckResult[] = [];
  if (gas === 0n) results.push(fail('balance', `${address} has no native currency for gas`, `send some to ${address}`));
  else if (!registered && tokens < minBond) {
    results.push(fail('balance', `${tokens} token units, the bond is ${minBond}`, `send at least ${minBond - tokens} token units to ${address}`));
  } else if (gas < LOW_GAS_WEI) results.push(warn('balance', `only ${formatEther(gas)} for gas`, `top up ${address}`));
  else results.push(pass('balance', `${formatEther(gas)} for gas, ${tokens} token units`));
  if (registered) results.push(pass('registered', `registered with bond ${info.bond}, API ${info.apiUrl}`));
  else if (status === 0) results.push(warn('registered', 'not registered yet', '`provider start` registers it with the bond'));
  else results.push(fail('registered', status === 2 ? 'unbonding: the provider is leaving the marketplace' : 'slashed: this key may not sell again', 'use another key (provider init)'));
  return results;
}

export async function checkClock(ctx: DoctorContext, facts: ChainFacts): Promise<CheckResult> {
  if (!ctx.rpc || !facts.rpcOk) return skip('clock', ctx.rpc ? 'needs the RPC' : 'devnet: the chain runs on this clock');
  const block = await ctx.rpc.getBlock('latest');
  if (!block) return skip('clock', 'no latest block');
  const skew = Math.round(ctx.clock.now() / 1000) - block.timestamp;
  const detail = `${Math.abs(skew)} s ${skew >= 0 ? 'ahead of' : 'behind'} the latest block`;
  if (Math.abs(skew) > CLOCK_FAIL_SECONDS) return fail('clock', detail, 'synchronise the clock (systemd-timesyncd or chrony): quotes and claims are timed');
  if (Math.abs(skew) > CLOCK_WARN_SECONDS) return warn('clock', detail, 'check time synchronisation (or the chain is producing blocks slowly)');
  return pass('clock', detail);
}
