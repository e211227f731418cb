import type { ErrorCode } from '../errors';

/**
 * The one table from error codes to HTTP statuses. A Record over every code: adding a code
 * without deciding its status is a compile error. Operator-side failures a tenant cannot fix
 * (Docker down, nvidia-smi broken) are 503: the request may succeed later, elsewhere or here.
 */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  CONFIG_INVALID: 500,
  CONFIG_NOT_FOUND: 500,
  CONFIG_UNREADABLE: 500,
  NVIDIA_SMI_NOT_FOUND: 503,
  NVIDIA_SMI_FAILED: 503,
  NVIDIA_SMI_TIMEOUT: 503,
  NVIDIA_SMI_BAD_OUTPUT: 503,
  GPU_BENCH_FAILED: 503,
  GPU_BENCH_TIMEOUT: 503,
  GPU_BENCH_BAD_OUTPUT: 503,
  BENCHMARK_INVALID: 502,
  DOCKER_UNREACHABLE: 503,
  DOCKER_PERMISSION_DENIED: 503,
  DOCKER_TIMEOUT: 503,
  HOST_PROBE_FAILED: 503,
  HOST_PROBE_TIMEOUT: 503,
  // Not now: leases end and free capacity; the tenant may retry or go elsewhere.
  CAPACITY_EXHAUSTED: 409,
  AUTH_MISSING: 401,
  AUTH_EXPIRED: 401,
  AUTH_BAD_SIGNATURE: 401,
  AUTH_REPLAYED: 401,
  AUTH_FORBIDDEN: 403,
  // Sessions end and free their slot: Retry-After says nothing sooner, so 429 without one.
  EXEC_SESSIONS_EXHAUSTED: 429,
  PORT_NOT_PUBLISHED: 403,
  ACCESS_TOKEN_INVALID: 401,
  ACCESS_TOKEN_EXPIRED: 401,
  ACCESS_TOKEN_REVOKED: 401,
  // The lease's own service did not answer: the tenant's program, not the daemon.
  UPSTREAM_UNREACHABLE: 502,
  UPSTREAM_TIMEOUT: 504,
  REQUEST_INVALID: 400,
  REQUEST_TOO_LARGE: 413,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  INTERNAL: 500,
  // Operator routes answer on loopback only.
  OPERATOR_ONLY: 403,
  // A peer on the LAN, allowed in with the dashboard's password, without it (or with a wrong one).
  OPERATOR_AUTH_REQUIRED: 401,
  // The dashboard's files are not built (npm run build) or not readable.
  DASHBOARD_UNAVAILABLE: 503,
  // Raised by the tenant client about a provider, never served by this API: a bad upstream.
  PROVIDER_UNREACHABLE: 502,
  TLS_CERT_INVALID: 500,
  TLS_PIN_MISMATCH: 502,
  TLS_PIN_MISSING: 502,
  PROVIDER_REFUSED: 502,
  PROVIDER_RESPONSE_INVALID: 502,
  QUOTE_UNTRUSTED: 502,
  USAGE_UNVERIFIED: 502,
  // Raised by the tenant client about the chain's state (no pending claim to dispute yet), never served.
  CLAIM_NOT_DISPUTABLE: 409,
  LEASE_NOT_FOUND: 404,
  // Draining: this provider takes no new leases now; another may.
  PROVIDER_DRAINING: 503,
  TENANT_DENIED: 403,
  // A manifest within the schema but beyond this provider's policy (duration, ceilings, GPU models).
  POLICY_REFUSED: 403,
  GPU_CONSTRAINT_UNMET: 409,
  // The tenant's tokens or allowance do not cover the minimum deposit: it can fix that and ask again.
  TENANT_UNFUNDED: 402,
  // The tenant already holds its share of free capacity in quotes: it may open or let them lapse.
  QUOTE_SHARE_EXCEEDED: 429,
  RATE_LIMITED: 429,
  CHECKPOINT_NOT_FOUND: 404,
  COUNTERSIGNATURE_INVALID: 400,
  // A manifest or image the tenant can change; the provider's engine problems are 503.
  MANIFEST_INVALID: 400,
  ALLOCATION_INVALID: 500,
  IMAGE_DENIED: 403,
  IMAGE_TOO_LARGE: 413,
  IMAGE_NOT_FOUND: 404,
  // The registry could not say what the image is (no such registry, a bad answer): the tenant's to fix.
  IMAGE_UNRESOLVABLE: 422,
  IMAGE_PLATFORM_UNSUPPORTED: 422,
  REGISTRY_TIMEOUT: 504,
  REGISTRY_AUTH_FAILED: 401,
  IMAGE_PULL_FAILED: 502,
  IMAGE_PULL_TIMEOUT: 504,
  NVIDIA_RUNTIME_MISSING: 503,
  CDI_DEVICE_MISSING: 503,
  CONTAINER_NOT_FOUND: 404,
  LOGS_GONE: 410,
  CONTAINER_NOT_RUNNING: 409,
  CONTAINER_CREATE_FAILED: 503,
  CONTAINER_START_FAILED: 503,
  CONTAINER_STOP_FAILED: 503,
  NETWORK_SETUP_FAILED: 503,
  SUBNET_POOL_EXHAUSTED: 503,
  FIREWALL_FAILED: 503,
  PORT_UNAVAILABLE: 503,
  DOCKER_REQUEST_FAILED: 503,
  BACKEND_TIMEOUT: 503,
  OPERATION_ABORTED: 503,
  REACHABILITY_FAILED: 500,
  UPNP_FAILED: 502,
  RELAY_FAILED: 502,
  RELAY_HOST_KEY_MISMATCH: 502,
  // The chain and the provider's own keys and store: nothing a tenant did or can fix.
  RPC_UNAVAILABLE: 503,
  RPC_TIMEOUT: 503,
  CHAIN_ID_MISMATCH: 500,
  TX_REVERTED: 502,
  TX_REJECTED: 502,
  TX_NONCE_TAKEN: 500,
  EVENT_INVALID: 500,
  REORG_TOO_DEEP: 500,
  KEYSTORE_NOT_FOUND: 500,
  KEYSTORE_INVALID: 500,
  KEYSTORE_PASSWORD_MISSING: 500,
  KEYSTORE_BAD_PASSWORD: 500,
  DEVNET_START_FAILED: 500,
  DEVNET_DEPLOY_FAILED: 500,
  STORE_OPEN_FAILED: 500,
  STORE_MIGRATION_FAILED: 500,
  INIT_WOULD_OVERWRITE: 409,
  USAGE: 400,
  // Raised by operator commands about the local daemon, never served by this API.
  DAEMON_NOT_RUNNING: 503,
  DAEMON_UNRESPONSIVE: 504,
  STORE_NOT_FOUND: 500,
  // Raised by `provider selftest` on this machine, never served: the operator's key file, or a
  // check of the daemon's own answers that failed.
  TENANT_KEY_INVALID: 500,
  SELFTEST_CHECK_FAILED: 500,
};
