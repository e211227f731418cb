import { z } from 'zod';
import type { Log } from 'ethers';
import { ProviderError } from '../errors';
import { toPlain, type TypedContract, type Abi } from './typed-contract';
import { ethAddressSchema } from '../util/eth-address';
import { FAULTS } from './evidence';

/**
 * Marketplace events as the daemon sees them: decoded with the generated ABI, then validated with
 * zod, so a handler gets checked, typed values and never a half-decoded ethers Result.
 */

const uint = z.bigint().nonnegative();
const address = ethAddressSchema;
const bytes32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/);

const rates = z.object({ perSecond: uint, perCpuSecond: uint, perGpuSecond: uint, perGiBEgress: uint });
const allocation = z.object({ cpuMillicores: uint, gpuCount: uint, egressBytesPerSecond: uint });
/** The lease's terms as LeaseOpened announces them: every later call passes them back. */
const terms = z.object({ provider: address, tenant: address, startedAt: uint, deposit: uint, rates, allocation });

const fault = uint.transform((n, ctx) => {
  const name = FAULTS[Number(n)];
  if (!name) {
    ctx.addIssue({ code: 'custom', message: `unknown fault ${n}` });
    return z.NEVER;
  }
  return name;
});

export const EVENT_SCHEMAS = {
  ProviderRegistered: z.object({ provider: address, apiUrl: z.string(), metadata: z.string(), bond: uint, payout: address }),
  ProviderUpdated: z.object({ provider: address, apiUrl: z.string(), metadata: z.string() }),
  PayoutChanged: z.object({ provider: address, payout: address }),
  ProviderUnbonding: z.object({ provider: address, unbondingEndsAt: uint }),
  BondWithdrawn: z.object({ provider: address, payout: address, amount: uint }),
  ProviderSlashed: z.object({
    provider: address,
    leaseId: uint,
    fault,
    bond: uint,
    finder: address,
    reward: uint,
    compensation: uint,
    toTreasury: uint,
  }),
  LeaseOpened: z.object({ leaseId: uint, provider: address, tenant: address, manifestHash: bytes32, maxDuration: uint, terms }),
  LeaseClosed: z.object({ leaseId: uint, by: address, end: uint }),
  CheckpointRedeemed: z.object({ leaseId: uint, cumulativeAmount: uint, credited: uint }),
  ClaimSubmitted: z.object({ leaseId: uint, checkpoint: bytes32, cumulativeAmount: uint, payableTo: uint, payableAt: uint, late: z.boolean() }),
  ClaimFinalized: z.object({ leaseId: uint, credited: uint }),
  ClaimDisputed: z.object({ leaseId: uint, disputer: address, fault }),
  LeaseSettled: z.object({ leaseId: uint, paid: uint, refund: uint }),
  Withdrawn: z.object({ provider: address, amount: uint }),
} as const;

export type MarketplaceEventName = keyof typeof EVENT_SCHEMAS;

export interface EventPosition {
  blockNumber: number;
  blockHash: string;
  transactionHash: string;
  logIndex: number;
}

export type MarketplaceEvent = {
  [K in MarketplaceEventName]: { name: K; args: z.output<(typeof EVENT_SCHEMAS)[K]> } & EventPosition;
}[MarketplaceEventName];

/** Decodes and validates one log; undefined for a log that is not a known Marketplace event. */
export function decodeMarketplaceLog<A extends Abi>(contract: TypedContract<A>, log: Log): MarketplaceEvent | undefined {
  const parsed = contract.parseLog(log);
  if (!parsed || !(parsed.name in EVENT_SCHEMAS)) return undefined;
  const name = parsed.name as MarketplaceEventName;
  const args: Record<string, unknown> = {};
  parsed.fragment.inputs.forEach((input, i) => {
    args[input.name] = toPlain(parsed.args[i]);
  });
  const result = EVENT_SCHEMAS[name].safeParse(args);
  if (!result.success) {
    throw new ProviderError('EVENT_INVALID', `${name} at block ${log.blockNumber} log ${log.index} failed validation: ${result.error.message}`, {
      input: { name, blockNumber: log.blockNumber, logIndex: log.index },
    });
  }
  return {
    name,
    args: result.data,
    blockNumber: log.blockNumber,
    blockHash: log.blockHash,
    transactionHash: log.transactionHash,
    logIndex: log.index,
  } as MarketplaceEvent;
}
