import type { EndReason } from '../leases';
import { isProviderError } from '../errors';
import { ProviderRefusedError } from '../tenant';

/** The steps of one lease, in order; a lease's step names are `<kind>.<step>`. */
export const LEASE_STEPS = ['quote', 'open', 'running', 'logs', 'exit', 'metering', 'checkpoint', 'payment'] as const;
export type LeaseStep = (typeof LEASE_STEPS)[number];
export type StepKind = 'daemon' | 'offer' | LeaseStep | 'close';

export interface FixFacts {
  apiUrl: string;
  image: string;
  /** The tenant's address, once known. */
  tenant?: string;
}

/** What the provider's answer says to do, keyed by its error code. */
const REFUSAL_FIXES: Record<string, (facts: FixFacts) => string> = {
  IMAGE_DENIED: (f) => `allow ${f.image} in admission.images.allow (or take it out of admission.images.deny), or pass --image <an allowed image>`,
  TENANT_DENIED: (f) => `allow the selftest tenant${f.tenant ? ` ${f.tenant}` : ''} in admission.tenants.allow (or take it out of admission.tenants.deny)`,
  CAPACITY_EXHAUSTED: () => 'wait for running leases to end (provider status), or lower the reserve in the config',
  PROVIDER_DRAINING: () => 'the daemon is draining: wait for it to finish, then restart it: provider start',
  NVIDIA_RUNTIME_MISSING: () => 'set up the NVIDIA container toolkit (provisioners/), then check with: provider doctor',
  CDI_DEVICE_MISSING: () => 'regenerate the CDI specs (nvidia-ctk cdi generate), then check with: provider doctor',
};

const TIMEOUT_FIXES: Record<StepKind, (facts: FixFacts) => string> = {
  daemon: (f) => `the daemon at ${f.apiUrl} accepts connections but does not answer: look at its log, or restart it: provider start`,
  offer: (f) => `the daemon at ${f.apiUrl} does not answer: look at its log, or restart it: provider start`,
  quote: () => 'the daemon did not quote in time: look at its log (admission, signing, the chain)',
  open: () => 'the chain did not confirm the openLease transaction in time: check the RPC and the tenant account\'s gas',
  running: (f) => `the daemon did not start the lease: check that it follows the chain (its log) and can pull the image: docker pull ${f.image}`,
  logs: () => 'the log stream did not end with the container: look at the daemon\'s log for the lease',
  exit: () => 'the workload did not end on its own: look at the lease\'s container (docker ps) and the daemon\'s log',
  metering: () => 'the daemon did not produce the lease\'s final usage and checkpoint: look at its log for the settlement of the lease',
  checkpoint: () => 'the daemon did not take the countersignature in time: look at its log',
  payment: () => 'the daemon did not redeem the countersigned checkpoint: look at its log for the redeem transaction, and check that the provider account has gas',
  close: () => 'the close did not confirm in time: check the lease on-chain and close it from the tenant account if it is still open',
};

/** The fix for a failed step that should never fail on an honest, healthy daemon. */
const REPORT_BUG = 'the daemon answered something a tenant cannot trust: keep its log and report it';

/**
 * What the operator should do about `err`, raised by `step`: the provider's own fix where it
 * sent one, a fix per known error code, else where to look.
 */
export function fixFor(step: StepKind, err: unknown, facts: FixFacts): string {
  if (err instanceof ProviderRefusedError) {
    const known = REFUSAL_FIXES[err.remoteCode];
    if (known) return known(facts);
    if (err.fix) return err.fix;
    return `the daemon refused (${err.remoteCode}): look at its log`;
  }
  // DAEMON_NOT_RUNNING: the operator listener did not answer when the pin was looked up.
  if (isProviderError(err, 'PROVIDER_UNREACHABLE') || isProviderError(err, 'DAEMON_NOT_RUNNING')) {
    return step === 'daemon'
      ? `start it: provider start (nothing answers at ${facts.apiUrl}; selftest finds the daemon through api.host and api.port of this config)`
      : `the daemon stopped answering at ${facts.apiUrl}: look at its log, then start it again: provider start`;
  }
  if (isProviderError(err, 'CHAIN_ID_MISMATCH')) {
    return 'the daemon runs on another chain or marketplace than this config names: run selftest with the config the daemon runs with (-c <file>)';
  }
  if (step === 'close') {
    return 'close the lease from the tenant account (closeLease on the marketplace): until then its deposit stays in escrow';
  }
  if (step === 'open' && (isProviderError(err, 'TX_REVERTED') || isProviderError(err, 'TX_REJECTED'))) {
    return `fund the tenant${facts.tenant ? ` ${facts.tenant}` : ''} with the payment token and gas, and check the revert reason above`;
  }
  if (isProviderError(err, 'RPC_UNAVAILABLE')) return 'check the RPC endpoint (--rpc-url, network.rpcUrl) and that the chain answers';
  if (isProviderError(err, 'QUOTE_UNTRUSTED') || isProviderError(err, 'USAGE_UNVERIFIED') || isProviderError(err, 'PROVIDER_RESPONSE_INVALID')) return REPORT_BUG;
  if (isProviderError(err) && err.fix) return err.fix;
  return `look at the daemon's log around this ${step} step`;
}

export function timeoutFix(step: StepKind, facts: FixFacts): string {
  return `${TIMEOUT_FIXES[step](facts)}; or give it more time: --timeout <seconds>`;
}

/** Why a lease ended other than by its workload exiting, and what to do about it. */
export function endReasonFix(reason: EndReason, facts: FixFacts): string {
  switch (reason) {
    case 'pull-failed':
      return `check that this machine can pull the image: docker pull ${facts.image} (or pass --image)`;
    case 'start-failed':
      return 'look at the daemon\'s log for why the container did not start, and run: provider doctor';
    case 'max-duration':
      return `the lease ran out of time, most likely in the image pull: pull it ahead: docker pull ${facts.image}`;
    case 'escrow-exhausted':
      return `the lease used up its deposit in seconds: check the rate card (pricing) in the config; ${REPORT_BUG}`;
    case 'tenant-closed':
      return 'someone closed the lease on-chain from the tenant account: do not run two selftests with one tenant at once';
    case 'operator-drain':
      return 'the daemon is draining: wait for it to finish, then restart it: provider start';
    case 'disk-quota':
      return 'the workload writes nothing: look at the daemon\'s disk check (runtime.diskCheckIntervalSeconds) in its log';
    case 'gpu-failed':
      return 'a GPU of this machine failed under the lease: see `provider capacity` for its health, and the kernel log for Xid errors';
    case 'container-vanished':
      return 'something outside the daemon removed the lease\'s container (a docker prune?): stop it and run selftest again';
    case 'refused':
      return 'the daemon refused the lease it was opened with (its log says why): open it with a fresh quote from this daemon';
    case 'exited':
      return REPORT_BUG;
  }
}
