export { next, TERMINAL_STATES } from './state-machine';
export type { LeaseState, LeaseEvent, LeaseEffect, LeaseSnapshot, EndReason, Transition } from './state-machine';
