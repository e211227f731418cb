import type { z } from 'zod';
import { ProviderError } from '../errors';

/** A command's options through its schema; the first problem is a USAGE error naming the flag as typed. */
export function parseFlags<S extends z.ZodType>(schema: S, raw: Record<string, unknown>, command: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const flag = `--${String(issue?.path[0] ?? '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  throw new ProviderError('USAGE', `${flag}: ${issue?.message ?? 'invalid'}`, { input: flag, fix: `see provider ${command} --help` });
}
