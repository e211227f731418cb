import { z } from 'zod';

export const STEP_STATUSES = ['pass', 'fail', 'skip'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** One step of a selftest, as printed and as `--json` emits it. */
export const selftestStepSchema = z.object({
  name: z.string(),
  status: z.enum(STEP_STATUSES),
  /** How long the step took; 0 for a step that did not run. */
  ms: z.number().int().nonnegative(),
  /** What was found, as one line. */
  detail: z.string(),
  /** What to do about a failure. */
  fix: z.string().optional(),
});
export type SelftestStep = z.infer<typeof selftestStepSchema>;

export const selftestReportSchema = z.object({
  passed: z.boolean(),
  /** Wall time of the whole selftest. */
  ms: z.number().int().nonnegative(),
  steps: z.array(selftestStepSchema),
});
export type SelftestReport = z.infer<typeof selftestReportSchema>;

/** A selftest passes when it ran something and nothing it ran failed; skipped steps do not count. */
export function buildReport(steps: readonly SelftestStep[], ms: number): SelftestReport {
  const passed = steps.some((s) => s.status === 'pass') && steps.every((s) => s.status !== 'fail');
  return { passed, ms: Math.max(0, Math.round(ms)), steps: [...steps] };
}
