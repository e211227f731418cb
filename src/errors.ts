/**
 * Every error the daemon raises on purpose is a ProviderError with a stable `code`: callers branch
 * on codes (through guards), the API maps codes to HTTP statuses in one table, and operators read
 * `fix` for what to do about it.
 */
export type ErrorCode =
  // config
  | 'CONFIG_INVALID'
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_UNREADABLE'
  // capacity
  | 'NVIDIA_SMI_NOT_FOUND'
  | 'NVIDIA_SMI_FAILED'
  | 'NVIDIA_SMI_TIMEOUT'
  | 'NVIDIA_SMI_BAD_OUTPUT'
  // the GPU benchmark
  | 'GPU_BENCH_FAILED'
  | 'GPU_BENCH_TIMEOUT'
  | 'GPU_BENCH_BAD_OUTPUT'
  | 'BENCHMARK_INVALID'
  | 'DOCKER_UNREACHABLE'
  | 'DOCKER_PERMISSION_DENIED'
  | 'DOCKER_TIMEOUT'
  | 'HOST_PROBE_FAILED'
  | 'HOST_PROBE_TIMEOUT'
  | 'CAPACITY_EXHAUSTED'
  // api
  | 'AUTH_MISSING'
  | 'AUTH_EXPIRED'
  | 'AUTH_BAD_SIGNATURE'
  | 'AUTH_REPLAYED'
  | 'AUTH_FORBIDDEN'
  | 'REQUEST_INVALID'
  | 'REQUEST_TOO_LARGE'
  | 'ROUTE_NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'INTERNAL'
  | 'OPERATOR_ONLY'
  // lease access: shells, ports and the tokens that open them
  | 'EXEC_SESSIONS_EXHAUSTED'
  | 'PORT_NOT_PUBLISHED'
  | 'ACCESS_TOKEN_INVALID'
  | 'ACCESS_TOKEN_EXPIRED'
  | 'ACCESS_TOKEN_REVOKED'
  | 'UPSTREAM_UNREACHABLE'
  | 'UPSTREAM_TIMEOUT'
  | 'OPERATOR_AUTH_REQUIRED'
  | 'DASHBOARD_UNAVAILABLE'
  // tenant client: what a tenant finds wrong with a provider's answers
  | 'PROVIDER_UNREACHABLE'
  | 'PROVIDER_REFUSED'
  | 'PROVIDER_RESPONSE_INVALID'
  | 'QUOTE_UNTRUSTED'
  | 'USAGE_UNVERIFIED'
  | 'CLAIM_NOT_DISPUTABLE'
  // tls: the API's certificate (provider side) and its on-chain pin (tenant side)
  | 'TLS_CERT_INVALID'
  | 'TLS_PIN_MISMATCH'
  | 'TLS_PIN_MISSING'
  // leases
  | 'LEASE_NOT_FOUND'
  | 'PROVIDER_DRAINING'
  | 'TENANT_DENIED'
  | 'POLICY_REFUSED'
  /** The manifest's gpus constraints (model, memory, CUDA/driver version, MIG profile) name what this provider does not have. */
  | 'GPU_CONSTRAINT_UNMET'
  // quotes: what a stranger must show before capacity is held for it
  | 'TENANT_UNFUNDED'
  | 'QUOTE_SHARE_EXCEEDED'
  | 'RATE_LIMITED'
  | 'CHECKPOINT_NOT_FOUND'
  | 'COUNTERSIGNATURE_INVALID'
  // runtime
  | 'MANIFEST_INVALID'
  | 'IMAGE_DENIED'
  | 'IMAGE_TOO_LARGE'
  | 'IMAGE_PULL_FAILED'
  | 'IMAGE_PULL_TIMEOUT'
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_UNRESOLVABLE'
  | 'IMAGE_PLATFORM_UNSUPPORTED'
  | 'REGISTRY_TIMEOUT'
  | 'REGISTRY_AUTH_FAILED'
  | 'NVIDIA_RUNTIME_MISSING'
  | 'CDI_DEVICE_MISSING'
  | 'ALLOCATION_INVALID'
  | 'CONTAINER_NOT_FOUND'
  | 'LOGS_GONE'
  | 'CONTAINER_NOT_RUNNING'
  | 'CONTAINER_CREATE_FAILED'
  | 'CONTAINER_START_FAILED'
  | 'CONTAINER_STOP_FAILED'
  | 'NETWORK_SETUP_FAILED'
  | 'SUBNET_POOL_EXHAUSTED'
  | 'FIREWALL_FAILED'
  | 'PORT_UNAVAILABLE'
  | 'DOCKER_REQUEST_FAILED'
  | 'BACKEND_TIMEOUT'
  | 'OPERATION_ABORTED'
  // reachability
  | 'REACHABILITY_FAILED'
  | 'UPNP_FAILED'
  | 'RELAY_FAILED'
  | 'RELAY_HOST_KEY_MISMATCH'
  // cli
  | 'INIT_WOULD_OVERWRITE'
  | 'USAGE'
  | 'DAEMON_NOT_RUNNING'
  | 'DAEMON_UNRESPONSIVE'
  | 'STORE_NOT_FOUND'
  // selftest
  | 'TENANT_KEY_INVALID'
  | 'SELFTEST_CHECK_FAILED'
  // chain
  | 'RPC_UNAVAILABLE'
  | 'RPC_TIMEOUT'
  | 'CHAIN_ID_MISMATCH'
  | 'TX_REVERTED'
  | 'TX_REJECTED'
  | 'TX_NONCE_TAKEN'
  | 'EVENT_INVALID'
  | 'REORG_TOO_DEEP'
  | 'KEYSTORE_NOT_FOUND'
  | 'KEYSTORE_INVALID'
  | 'KEYSTORE_PASSWORD_MISSING'
  | 'KEYSTORE_BAD_PASSWORD'
  | 'DEVNET_START_FAILED'
  | 'DEVNET_DEPLOY_FAILED'
  // store
  | 'STORE_OPEN_FAILED'
  | 'STORE_MIGRATION_FAILED';

export interface ProviderErrorOptions {
  /** What the operator should do about it, as one sentence. */
  fix?: string;
  /** The offending input (a key path, an image name, a file); never a secret. */
  input?: unknown;
  cause?: unknown;
  /** When asking again may succeed (a rate limit): the API answers with a Retry-After header. */
  retryAfterSeconds?: number;
}

export class ProviderError extends Error {
  readonly code: ErrorCode;
  readonly fix: string | undefined;
  readonly input: unknown;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options: ProviderErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProviderError';
    this.code = code;
    this.fix = options.fix;
    this.input = options.input;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isProviderError(err: unknown, code?: ErrorCode): err is ProviderError {
  return err instanceof ProviderError && (code === undefined || err.code === code);
}

/** A one-line description of any thrown value, for logs and reports. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
