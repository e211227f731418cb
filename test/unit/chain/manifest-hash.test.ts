import { canonicalJson, manifestHash } from '../../../src/chain';

describe('manifestHash', () => {
  const manifest = { image: 'busybox', resources: { cpuMillis: 500, memoryBytes: 64, gpus: { count: 0 } }, maxDurationSeconds: 60 };

  it('does not depend on key order', () => {
    const reordered = { maxDurationSeconds: 60, resources: { gpus: { count: 0 }, memoryBytes: 64, cpuMillis: 500 }, image: 'busybox' };
    expect(canonicalJson(reordered)).toBe(canonicalJson(manifest));
    expect(manifestHash(reordered)).toBe(manifestHash(manifest));
  });

  it('changes with anything the lease runs', () => {
    expect(manifestHash({ ...manifest, image: 'busybox:1' })).not.toBe(manifestHash(manifest));
    expect(manifestHash({ ...manifest, args: ['x'] })).not.toBe(manifestHash(manifest));
  });

  it('leaves registry credentials out', () => {
    const withAuth = { ...manifest, registryAuth: { username: 'u', password: 'hunter2' } };
    expect(manifestHash(withAuth)).toBe(manifestHash(manifest));
  });

  it('is keccak256 of the canonical JSON', () => {
    expect(canonicalJson({ b: [1, { d: 2, c: undefined }], a: 'x' })).toBe('{"a":"x","b":[1,{"d":2}]}');
    expect(manifestHash({})).toBe('0xb48d38f93eaa084033fc5970bf96e559c33c4cdc07d889ab00b4d63f9590739d');
  });
});
