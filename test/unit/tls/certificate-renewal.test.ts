import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../../src/config';
import { startCertificateRenewal } from '../../../src/daemon/certificate-renewal';
import { silentLogger } from '../../../src/log';
import { ensureCertificate, renewalDue, type ApiCertificate } from '../../../src/tls';
import { ManualClock } from '../../../src/util/clock';
import { until } from '../../support/until';

const DAY = 86_400_000;

describe('the certificate renewal loop', () => {
  it('renews the daemon\'s own certificate once it is due, not before, and hands the new one over', async () => {
    const config = configSchema.parse({ dataDir: mkdtempSync(join(tmpdir(), 'provider-renew-')), api: { tls: { validityDays: 10, renewBeforeDays: 3 } } });
    const start = Date.parse('2026-12-01T00:00:00Z');
    const clock = new ManualClock(start);
    const current = await ensureCertificate({ config, now: start, log: silentLogger() });
    const renewed: ApiCertificate[] = [];
    const stop = startCertificateRenewal({ config, current, clock, log: silentLogger(), onRenewed: (next) => renewed.push(next) });
    try {
      const due = renewalDue(current.info, 3);
      expect(due).toBe(current.info.notAfter.getTime() - 3 * DAY);
      // Every wait is at most 6 h: step through the week, one wait at a time.
      while (clock.now() < due - 1) {
        await until('the loop sleeps', () => clock.pendingSleeps === 1, 5_000, 5);
        clock.set(Math.min(due - 1, clock.now() + 6 * 3_600_000));
      }
      expect(renewed).toEqual([]);
      await until('the loop sleeps', () => clock.pendingSleeps === 1, 5_000, 5);
      clock.set(due);
      const next = await until('renewed', () => renewed[0], 5_000, 5);
      expect(next.info.sha256).not.toBe(current.info.sha256);
      expect(next.info.notAfter.getTime()).toBe(Math.floor((due + 10 * DAY) / 1000) * 1000);
    } finally {
      await stop();
    }
  });
});
