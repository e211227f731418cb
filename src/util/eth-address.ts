import { z } from 'zod';

/** A 0x-prefixed 20-byte hex address, any case (checksums are checked where signatures are). */
export const ETH_ADDRESS = /^0x[0-9a-fA-F]{40}$/;

export const ethAddressSchema = z.string().regex(ETH_ADDRESS, 'expected a 0x-prefixed 20-byte hex address');
