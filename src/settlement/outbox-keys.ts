/**
 * The outbox keys of settlement's transactions. A key names the step it takes (`claim:<lease>:<seq>`),
 * so a step repeated after a crash finds its intent already recorded and never sends it twice;
 * whoever asks how a step went looks it up by the same key. Built and read here only.
 */

export type SettlementKey =
  | { kind: 'redeem' | 'claim' | 'finalize'; leaseId: bigint; seq: bigint }
  | { kind: 'close' | 'settle'; leaseId: bigint }
  /** Withdrawals are numbered: the same amount may be withdrawn again later. */
  | { kind: 'withdraw'; number: number };

export type SettlementKeyKind = SettlementKey['kind'];

/** What every withdrawal's key starts with: the outbox finds the one in flight and numbers the next by it. */
export const WITHDRAW_KEY_PREFIX = 'withdraw:';

type LeaseId = bigint | string;
type Seq = bigint | number;

export const redeemKey = (leaseId: LeaseId, seq: Seq): string => `redeem:${leaseId}:${seq}`;
export const claimKey = (leaseId: LeaseId, seq: Seq): string => `claim:${leaseId}:${seq}`;
export const finalizeKey = (leaseId: LeaseId, seq: Seq): string => `finalize:${leaseId}:${seq}`;
export const closeKey = (leaseId: LeaseId): string => `close:${leaseId}`;
export const settleKey = (leaseId: LeaseId): string => `settle:${leaseId}`;
export const withdrawKey = (number: number): string => `${WITHDRAW_KEY_PREFIX}${number}`;

const PATTERN = /^(redeem|claim|finalize|close|settle|withdraw):(\d+)(?::(\d+))?$/;

/** The step a key names, or undefined for a key settlement did not build (registration's). */
export function parseSettlementKey(key: string): SettlementKey | undefined {
  const match = PATTERN.exec(key);
  if (!match) return undefined;
  const [, kind, first, second] = match as unknown as [string, SettlementKeyKind, string, string | undefined];
  switch (kind) {
    case 'redeem':
    case 'claim':
    case 'finalize':
      return second === undefined ? undefined : { kind, leaseId: BigInt(first), seq: BigInt(second) };
    case 'close':
    case 'settle':
      return second === undefined ? { kind, leaseId: BigInt(first) } : undefined;
    case 'withdraw':
      return second === undefined ? { kind, number: Number(first) } : undefined;
  }
}

/** Transactions that bring the provider its money: a failure of one is a failed claim to the operator. */
export function isPaymentKey(key: string): boolean {
  const kind = parseSettlementKey(key)?.kind;
  return kind === 'claim' || kind === 'redeem' || kind === 'withdraw';
}
