import { ProviderError } from '../../../src/errors';
import { endReasonFix, fixFor, timeoutFix } from '../../../src/selftest';
import { ProviderRefusedError } from '../../../src/tenant';

const facts = { apiUrl: 'http://127.0.0.1:8420', image: 'busybox:1.36', tenant: '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC' };

describe('fixFor', () => {
  it('tells the operator to start the daemon when nothing answers the first call', () => {
    expect(fixFor('daemon', new ProviderError('PROVIDER_UNREACHABLE', 'fetch failed'), facts)).toMatch(/^start it: provider start \(nothing answers at http:\/\/127\.0\.0\.1:8420/);
  });

  it('says the daemon stopped answering when it did so mid-lease', () => {
    expect(fixFor('logs', new ProviderError('PROVIDER_UNREACHABLE', 'fetch failed'), facts)).toContain('stopped answering');
  });

  it.each([
    ['IMAGE_DENIED', 'admission.images.allow'],
    ['TENANT_DENIED', 'allow the selftest tenant 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC in admission.tenants.allow'],
    ['CAPACITY_EXHAUSTED', 'wait for running leases'],
    ['NVIDIA_RUNTIME_MISSING', 'NVIDIA container toolkit'],
  ])('answers a %s refusal with what to change', (code, expected) => {
    expect(fixFor('quote', new ProviderRefusedError(403, code, 'no'), facts)).toContain(expected);
  });

  it('passes on the provider\'s own fix for a refusal it has no entry for', () => {
    expect(fixFor('quote', new ProviderRefusedError(403, 'POLICY_REFUSED', 'too long', { fix: 'ask for at most 3600 s' }), facts)).toBe('ask for at most 3600 s');
  });

  it('asks to fund the tenant when the open reverts, not when the close does', () => {
    expect(fixFor('open', new ProviderError('TX_REVERTED', 'openLease reverted'), facts)).toContain('fund the tenant 0x3C44');
    expect(fixFor('close', new ProviderError('TX_REVERTED', 'closeLease reverted'), facts)).toContain('close the lease from the tenant account');
  });

  it('calls an untrustworthy answer a bug to report', () => {
    expect(fixFor('metering', new ProviderError('USAGE_UNVERIFIED', 'bad proof'), facts)).toContain('report it');
  });

  it('points at the daemon\'s log for anything else', () => {
    expect(fixFor('exit', new Error('boom'), facts)).toBe('look at the daemon\'s log around this exit step');
  });
});

describe('timeoutFix and endReasonFix', () => {
  it('says how to give a step more time', () => {
    expect(timeoutFix('payment', facts)).toMatch(/redeem transaction.*--timeout <seconds>$/);
  });

  it('names the image to pull when the pull failed', () => {
    expect(endReasonFix('pull-failed', facts)).toBe('check that this machine can pull the image: docker pull busybox:1.36 (or pass --image)');
  });
});
