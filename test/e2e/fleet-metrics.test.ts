import { join } from 'node:path';
import { DaemonProcess } from './daemon-process';
import { exportedNames, namesUsed } from '../support/promql-names';

jest.setTimeout(150_000);

const FAKE_BIN = join(__dirname, '..', 'fixtures', 'bin');

/** Series Prometheus makes itself for every target: not the daemon's to export. */
const FROM_PROMETHEUS = new Set(['up']);

describe('the fleet dashboard and alert rules against a running daemon', () => {
  let daemon: DaemonProcess | undefined;
  afterAll(async () => {
    await daemon?.cleanup();
  });

  it('reads only metrics the daemon exports', async () => {
    // Eight fake H100s, so GPU metrics have GPUs to describe (Docker here has no NVIDIA runtime, so none is offered).
    daemon = await DaemonProcess.create('fleet-metrics', {}, { PROVIDER_NVIDIA_SMI: join(FAKE_BIN, 'nvidia-smi'), FAKE_NVIDIA_SMI_FIXTURE: 'h100x8-580' });
    const ready = await daemon.start();
    expect(ready.apiUrl).toMatch(/^https:/);
    // As Prometheus scrapes it: the API's TLS port (this test pins the certificate; see provider-scrape.yml).
    const response = await daemon.fetch('/metrics', { method: 'GET', signal: AbortSignal.timeout(15_000) });
    expect(response.status).toBe(200);
    const exported = exportedNames(await response.text());

    const used = namesUsed();
    const missing = [...used].filter(([name]) => !exported.has(name) && !FROM_PROMETHEUS.has(name));
    expect(missing.map(([name, where]) => `${name} (read by ${where.join(', ')})`)).toEqual([]);
    expect(used.size).toBeGreaterThan(15);
  });
});
