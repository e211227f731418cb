export { signRequest } from './request-signer';
export type { SignOptions } from './request-signer';
