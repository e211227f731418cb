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
  REQUEST_INVALID: 400,
  REQUEST_TOO_LARGE: 413,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  INTERNAL: 500,
  // The chain and the provider's own keys and store: nothing a tenant did or can fix.
  RPC_UNAVAILABLE: 503,
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
  USAGE: 400,
};
