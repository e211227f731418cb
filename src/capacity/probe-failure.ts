import { describeError, isProviderError, type ErrorCode } from '../errors';
import type { ProbeFailure } from './types';

export function probeFailure(code: ErrorCode, reason: string, fix?: string): ProbeFailure {
  return { ok: false, code, reason, fix: fix ?? null };
}

/** A typed error keeps its code and fix; anything else is reported under `fallback`. */
export function failureFrom(err: unknown, fallback: ErrorCode): ProbeFailure {
  if (isProviderError(err)) return probeFailure(err.code, err.message, err.fix);
  return probeFailure(fallback, describeError(err));
}
