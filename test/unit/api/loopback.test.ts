import { isLoopback, isOwnAddress } from '../../../src/api';

describe('isLoopback', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['192.0.2.2', false],
    ['::ffff:192.0.2.2', false],
    ['10.0.0.1', false],
    ['fe80::1', false],
    ['127.0.0.1.evil', false],
    [undefined, false],
    ['', false],
  ])('%s is loopback: %s', (address, expected) => {
    expect(isLoopback(address)).toBe(expected);
  });
});

describe('isOwnAddress', () => {
  const interfaces = {
    lo: [{ address: '127.0.0.1' }, { address: '::1' }],
    eth0: [{ address: '192.0.2.10' }, { address: 'fe80::a00:27ff:fe4e:66a1' }],
    wlan0: [{ address: '2001:db8::5' }],
  };

  it.each([
    ['192.0.2.10', true],
    ['::ffff:192.0.2.10', true],
    ['2001:DB8::5', true],
    ['fe80::a00:27ff:fe4e:66a1%eth0', true],
    ['192.0.2.11', false],
    ['::ffff:192.0.2.11', false],
    ['10.0.0.1', false],
    ['2001:db8::6', false],
    ['192.0.2.10.evil', false],
    [undefined, false],
    ['', false],
  ])('%s is one of this host\'s addresses: %s', (address, expected) => {
    expect(isOwnAddress(address, interfaces)).toBe(expected);
  });

  it('knows no address when the host lists no interfaces', () => {
    expect(isOwnAddress('192.0.2.10', {})).toBe(false);
  });
});
