export { next, TERMINAL_STATES } from './state-machine';
export type { LeaseState, LeaseEvent, LeaseEffect, LeaseSnapshot, EndReason, Transition } from './state-machine';
export { Admission, QUOTE_HOLD_GRACE_SECONDS, quoteHolder, leaseHolder, type AdmissionDeps, type AdmittedQuote } from './admission';
export { LeaseEngine, type LeaseEngineDeps, type CounterSource } from './lease-engine';
