import { Contract, Interface, type ContractRunner, type Log, type LogDescription } from 'ethers';
import { ProviderError } from '../errors';
import { ProbeTimeoutError, withTimeout } from '../util/with-timeout';

/**
 * A thin typed face over ethers' Contract, driven by the `as const` ABI the compile script
 * generates: function names, argument shapes and view results are checked by tsc, with no
 * code generator. Writes are not sent from here: `encode` gives the calldata, and the
 * TransactionSender (which owns the nonce and the outbox) sends it.
 */

export interface AbiParameter {
  readonly name: string;
  readonly type: string;
  readonly components?: readonly AbiParameter[];
  readonly indexed?: boolean;
}

export interface AbiFunction {
  readonly type: 'function';
  readonly name: string;
  readonly inputs: readonly AbiParameter[];
  readonly outputs: readonly AbiParameter[];
  readonly stateMutability: 'pure' | 'view' | 'nonpayable' | 'payable';
}

export type Abi = readonly ({ readonly type: string; readonly name?: string } & Record<string, unknown>)[];

type Int = `int${string}` | `uint${string}`;

/** The TypeScript value ethers accepts for an ABI parameter. */
export type InputOf<P> = P extends { readonly type: `${infer Inner}[]`; readonly components?: infer C }
  ? readonly InputOf<{ type: Inner; components: C }>[]
  : P extends { readonly type: 'tuple'; readonly components: infer C extends readonly AbiParameter[] }
    ? { [K in C[number] as K['name']]: InputOf<K> }
    : P extends { readonly type: Int }
      ? bigint | number
      : P extends { readonly type: 'bool' }
        ? boolean
        : string;

/** The TypeScript value ethers returns for an ABI parameter (structs as named objects via toObject). */
export type OutputOf<P> = P extends { readonly type: `${infer Inner}[]`; readonly components?: infer C }
  ? OutputOf<{ type: Inner; components: C }>[]
  : P extends { readonly type: 'tuple'; readonly components: infer C extends readonly AbiParameter[] }
    ? { [K in C[number] as K['name']]: OutputOf<K> }
    : P extends { readonly type: Int }
      ? bigint
      : P extends { readonly type: 'bool' }
        ? boolean
        : string;

type Inputs<Ps> = Ps extends readonly [infer H, ...infer T] ? [InputOf<H>, ...Inputs<T>] : [];

type FunctionsOf<A extends Abi> = Extract<A[number], { type: 'function' }>;
export type ViewName<A extends Abi> = Extract<FunctionsOf<A>, { stateMutability: 'view' | 'pure' }>['name'];
export type WriteName<A extends Abi> = Extract<FunctionsOf<A>, { stateMutability: 'nonpayable' | 'payable' }>['name'];
type FunctionNamed<A extends Abi, N> = Extract<FunctionsOf<A>, { name: N }>;
export type ArgsOf<A extends Abi, N> = FunctionNamed<A, N> extends { inputs: infer I } ? Inputs<I> : never;
export type ResultOf<A extends Abi, N> = FunctionNamed<A, N> extends { outputs: readonly [infer O] }
  ? OutputOf<O>
  : FunctionNamed<A, N> extends { outputs: readonly [] }
    ? void
    : unknown[];

export interface CallOptions {
  blockTag?: number | 'latest' | 'pending';
  signal?: AbortSignal;
  /** The longest the node may take to answer (default 30 s): a wedged RPC fails the read, it never holds a loop. */
  timeoutMs?: number;
}

const READ_TIMEOUT_MS = 30_000;

export class TypedContract<A extends Abi> {
  readonly interface: Interface;
  private readonly contract: Contract;

  constructor(
    readonly abi: A,
    readonly address: string,
    runner: ContractRunner | null,
  ) {
    this.interface = new Interface(abi as unknown as ConstructorParameters<typeof Interface>[0]);
    this.contract = new Contract(address, this.interface, runner);
  }

  /** Calls a view or pure function; structs come back as plain named objects. */
  async read<N extends ViewName<A>>(name: N, args: ArgsOf<A, N>, options: CallOptions = {}): Promise<ResultOf<A, N>> {
    const fn = this.contract.getFunction(name as string);
    const overrides = options.blockTag === undefined ? [] : [{ blockTag: options.blockTag }];
    const result: unknown = await boundedRpc(`${String(name)}()`, options, () => fn.staticCall(...(args as unknown[]), ...overrides));
    return toPlain(result) as ResultOf<A, N>;
  }

  /** Calldata for a state-changing function, for the transaction sender. */
  encode<N extends WriteName<A>>(name: N, args: ArgsOf<A, N>): string {
    return this.interface.encodeFunctionData(name as string, args as unknown[]);
  }

  /** Decodes a log of this contract, or null when it is not one of its events. */
  parseLog(log: Pick<Log, 'topics' | 'data'>): LogDescription | null {
    try {
      return this.interface.parseLog({ topics: [...log.topics], data: log.data });
    } catch {
      return null;
    }
  }

  /** Names a custom error in revert data (`0x…`), e.g. `StaleCheckpoint(5, 7)`, or undefined. */
  describeRevert(data: string | undefined | null): string | undefined {
    if (!data || data === '0x') return undefined;
    try {
      const parsed = this.interface.parseError(data);
      if (!parsed) return undefined;
      return `${parsed.name}(${parsed.args.map((a: unknown) => String(a)).join(', ')})`;
    } catch {
      return undefined;
    }
  }
}

/** ethers Results (array-like with names) into plain objects/arrays, recursively. */
export function toPlain(value: unknown): unknown {
  if (value && typeof value === 'object' && typeof (value as { toObject?: unknown }).toObject === 'function') {
    const result = value as unknown as { toObject(deep?: boolean): Record<string, unknown> } & unknown[];
    const keys = Object.keys(result.toObject());
    // A Result with unnamed entries (a plain array) has keys like "_" or none that map back.
    const named = keys.length > 0 && keys.every((k) => !/^\d+$/.test(k) && k !== '_');
    if (named && keys.length === result.length) {
      const out: Record<string, unknown> = {};
      keys.forEach((key, i) => {
        out[key] = toPlain(result[i]);
      });
      return out;
    }
    return Array.from(result, (v) => toPlain(v));
  }
  if (Array.isArray(value)) return value.map((v) => toPlain(v));
  return value;
}

/**
 * One RPC request, bounded: RPC_TIMEOUT after `timeoutMs` (ethers' own request timeout is five
 * minutes), at once when the caller's signal aborts. ethers cannot cancel the request itself, so a
 * late answer is dropped.
 */
export async function boundedRpc<T>(what: string, options: Pick<CallOptions, 'signal' | 'timeoutMs'>, request: () => Promise<T>): Promise<T> {
  const timeoutMs = options.timeoutMs ?? READ_TIMEOUT_MS;
  try {
    return await withTimeout(what, timeoutMs, () => request(), options.signal);
  } catch (err) {
    if (err instanceof ProbeTimeoutError) {
      throw new ProviderError('RPC_TIMEOUT', `the chain node gave no answer to ${what} within ${timeoutMs} ms`, {
        cause: err,
        fix: 'check that the RPC endpoint (network.rpcUrl) answers; a slow public endpoint is better replaced than waited on',
      });
    }
    throw err;
  }
}
