export { next, terminalState, TERMINAL_STATES } from './state-machine';
export type { LeaseState, LeaseEvent, LeaseEffect, LeaseSnapshot, EndReason, Transition } from './state-machine';
export { resume, type ResumeStep, type ObservedWorkload, type StoredLeaseFacts } from './recovery';
export { limitBreach, type LeaseLimits, type LimitBreach } from './limit-guards';
export { Admission, QUOTE_HOLD_GRACE_SECONDS, quoteHolder, leaseHolder, type AdmissionDeps, type AdmittedQuote } from './admission';
export { LeaseEngine, type LeaseEngineDeps } from './lease-engine';
export type { LeaseSettlement } from './settlement-loop';
