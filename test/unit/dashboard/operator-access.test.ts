import type { IncomingMessage } from 'node:http';
import { DashboardAccess, basicPassword, namesThisMachine } from '../../../src/dashboard';
import { isProviderError } from '../../../src/errors';

const PASSWORD = 'correct horse battery staple';

function aRequest(headers: Record<string, string> = {}): IncomingMessage {
  return { headers: { host: '127.0.0.1:8420', ...headers } } as unknown as IncomingMessage;
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

function refusal(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (err) {
    return isProviderError(err) ? err.code : String(err);
  }
}

describe('DashboardAccess', () => {
  it('admits this machine with or without a password set', () => {
    expect(new DashboardAccess({}).admit(aRequest(), 'GET', true)).toBe(true);
    expect(new DashboardAccess({ password: PASSWORD }).admit(aRequest(), 'POST', true)).toBe(true);
  });

  it('refuses another machine when no password is set, whatever it sends', () => {
    const access = new DashboardAccess({});
    expect(access.admit(aRequest(), 'GET', false)).toBe(false);
    expect(access.admit(aRequest({ authorization: basic('x', '') }), 'GET', false)).toBe(false);
  });

  it('asks another machine for the password, and admits it with the right one, to read only', () => {
    const access = new DashboardAccess({ password: PASSWORD });
    expect(refusal(() => access.admit(aRequest(), 'GET', false))).toBe('OPERATOR_AUTH_REQUIRED');
    expect(refusal(() => access.admit(aRequest({ authorization: basic('operator', 'wrong password!') }), 'GET', false))).toBe('OPERATOR_AUTH_REQUIRED');
    expect(refusal(() => access.admit(aRequest({ authorization: basic('operator', `${PASSWORD} `) }), 'GET', false))).toBe('OPERATOR_AUTH_REQUIRED');
    expect(refusal(() => access.admit(aRequest({ authorization: `Bearer ${PASSWORD}` }), 'GET', false))).toBe('OPERATOR_AUTH_REQUIRED');
    expect(access.admit(aRequest({ authorization: basic('anyone', PASSWORD) }), 'GET', false)).toBe(true);
    // Withdrawing stays with the machine itself, password or not.
    expect(access.admit(aRequest({ authorization: basic('anyone', PASSWORD) }), 'POST', false)).toBe(false);
  });

  it('refuses a request from this machine that names another host (DNS rebinding), with the fix', () => {
    const access = new DashboardAccess({});
    let error: unknown;
    try {
      access.admit(aRequest({ host: 'attacker.example:8420' }), 'GET', true);
    } catch (err) {
      error = err;
    }
    expect(isProviderError(error, 'OPERATOR_ONLY')).toBe(true);
    expect((error as { fix?: string }).fix).toContain('http://127.0.0.1:<api.operatorPort>/dashboard');
  });
});

describe('namesThisMachine', () => {
  it.each([
    ['127.0.0.1:8420', true],
    ['127.0.0.1', true],
    ['192.0.2.7:8420', true],
    ['[::1]:8420', true],
    ['localhost:8420', true],
    ['LOCALHOST', true],
    ['dash.localhost:8420', true],
    [undefined, true],
    ['attacker.example', false],
    ['127.0.0.1.nip.io:8420', false],
    ['[evil]:8420', false],
    ['', false],
  ])('%s: %s', (host, expected) => {
    expect(namesThisMachine(host)).toBe(expected);
  });
});

describe('basicPassword', () => {
  it('reads the password after the first colon, and nothing from other schemes', () => {
    expect(basicPassword(basic('u', 'a:b'))).toBe('a:b');
    expect(basicPassword('basic ' + Buffer.from(':p').toString('base64'))).toBe('p');
    expect(basicPassword('Basic ' + Buffer.from('nocolon').toString('base64'))).toBeUndefined();
    expect(basicPassword('Digest x')).toBeUndefined();
    expect(basicPassword(undefined)).toBeUndefined();
  });
});
