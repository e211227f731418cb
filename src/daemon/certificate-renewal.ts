import type { ProviderConfig } from '../config';
import { describeError } from '../errors';
import type { Logger } from '../log';
import { ensureCertificate, renewalDue, type ApiCertificate } from '../tls';
import type { Clock } from '../util/clock';

/** Looks again at least this often: a machine that slept through the due time renews on waking. */
const MAX_WAIT_MS = 6 * 3_600_000;
/** After a failed renewal (a full disk), before the next try. */
const RETRY_MS = 10 * 60_000;

/**
 * Renews the daemon's own certificate `renewBeforeDays` before it expires (an operator's
 * certificate is only warned about: ensureCertificate reads it again), and hands a new one to
 * `onRenewed`. Returns its stop.
 */
export function startCertificateRenewal(options: {
  config: Pick<ProviderConfig, 'api' | 'dataDir'>;
  current: ApiCertificate;
  clock: Clock;
  log: Logger;
  onRenewed: (renewed: ApiCertificate) => void;
}): () => Promise<void> {
  const { config, clock, log } = options;
  const controller = new AbortController();
  let current = options.current;
  const loop = (async () => {
    while (!controller.signal.aborted) {
      const due = renewalDue(current.info, config.api.tls.renewBeforeDays);
      const wait = Math.min(MAX_WAIT_MS, Math.max(0, due - clock.now()));
      try {
        await clock.sleep(wait, controller.signal);
      } catch {
        return;
      }
      if (clock.now() < due) continue;
      try {
        const next = await ensureCertificate({ config, now: clock.now(), log });
        if (next.info.sha256 !== current.info.sha256) options.onRenewed(next);
        current = next;
        // An operator's certificate stays due until they renew it: warn once a wait, not in a spin.
        if (clock.now() >= renewalDue(current.info, config.api.tls.renewBeforeDays)) await clock.sleep(MAX_WAIT_MS, controller.signal);
      } catch (err) {
        if (controller.signal.aborted) return;
        log.error({ err: describeError(err) }, 'renewing the API certificate failed; trying again in 10 minutes');
        await clock.sleep(RETRY_MS, controller.signal).catch(() => undefined);
      }
    }
  })();
  return async () => {
    controller.abort();
    await loop;
  };
}
