export { Selftest, type SelftestOptions } from './selftest';
export { type SelftestTenant } from './lease-steps';
export { buildReport, selftestReportSchema, selftestStepSchema, STEP_STATUSES, type SelftestReport, type SelftestStep, type StepStatus } from './report';
export { fixFor, endReasonFix, timeoutFix, LEASE_STEPS, type FixFacts, type LeaseStep, type StepKind } from './fixes';
export { cpuWorkload, gpuWorkload, markerLine, CPU_BURN_SECONDS, type WorkloadOptions } from './workloads';
