import { AbiCoder, keccak256, concat } from 'ethers';
import { USAGE_LEAF_ENCODING, usageAmount, usageLeafValues, usageTree, type Rates, type UsageRecord } from '../../../src/chain/protocol';
import { marketplaceAbi } from '../../../src/chain/artifacts/marketplace';

const rates: Rates = { perSecond: 3n, perCpuSecond: 1_000n, perGpuSecond: 7n, perGiBEgress: 2n ** 31n };

function aRecord(overrides: Partial<UsageRecord> = {}): UsageRecord {
  return {
    leaseId: 1n,
    seq: 0n,
    t0: 100n,
    t1: 110n,
    cpuMillis: 1_500n,
    memoryByteSeconds: 0n,
    gpuMillis: 999n,
    rxBytes: 5n,
    txBytes: 2n ** 29n,
    amount: 0n,
    ...overrides,
  };
}

describe('usage pricing', () => {
  it('charges each term of the rate card, rounding each down', () => {
    // 3*10 + 1000*1500/1000 + floor(7*999/1000) + 2^31 * 2^29 / 2^30
    expect(usageAmount(rates, aRecord())).toBe(30n + 1_500n + 6n + 2n ** 30n);
  });

  it('refuses a record that ends before it starts', () => {
    expect(() => usageAmount(rates, aRecord({ t0: 5n, t1: 4n }))).toThrow(RangeError);
  });
});

describe('usage leaf encoding', () => {
  it('follows the field order of the contract struct', () => {
    const struct = marketplaceAbi
      .find((e) => e.type === 'function' && e.name === 'usageLeaf')!
      .inputs[0] as { components: readonly { name: string; type: string }[] };
    expect(struct.components.map((c) => c.type)).toEqual(USAGE_LEAF_ENCODING);
    expect(Object.keys(aRecord())).toEqual(struct.components.map((c) => c.name));
  });

  it('builds the OpenZeppelin standard leaf: keccak256(keccak256(abi.encode(record)))', () => {
    const record = aRecord({ amount: 42n });
    const tree = usageTree([record, aRecord({ seq: 1n })]);
    const inner = keccak256(AbiCoder.defaultAbiCoder().encode(USAGE_LEAF_ENCODING, usageLeafValues(record)));
    expect(tree.leafHash(usageLeafValues(record))).toBe(keccak256(concat([inner])));
    expect(tree.verify(0, tree.getProof(0))).toBe(true);
  });
});
