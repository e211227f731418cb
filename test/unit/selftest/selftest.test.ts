import { ProviderError } from '../../../src/errors';
import { createLogger } from '../../../src/log';
import { Selftest, buildReport, type SelftestOptions, type SelftestReport, type SelftestStep } from '../../../src/selftest';
import { ProviderRefusedError } from '../../../src/tenant';
import { systemClock } from '../../../src/util/clock';
import { FakeTenant, anOffer } from './fake-tenant';

const CPU_STEPS = ['cpu.quote', 'cpu.open', 'cpu.running', 'cpu.logs', 'cpu.exit', 'cpu.metering', 'cpu.checkpoint', 'cpu.payment'];

function selftest(tenant: FakeTenant, overrides: Partial<SelftestOptions> = {}): Selftest {
  let nonces = 0;
  return new Selftest({
    tenant,
    clock: systemClock,
    log: createLogger({ level: 'silent', format: 'json' }),
    nonce: () => `abc${(nonces += 1)}`,
    apiUrl: 'http://127.0.0.1:8420',
    image: 'busybox:1.36',
    gpuImage: 'nvidia/cuda:12.4.1-base-ubuntu22.04',
    gpu: true,
    sampleIntervalSeconds: 1,
    timeoutMs: 5_000,
    closeTimeoutMs: 2_000,
    pollIntervalMs: 1,
    ...overrides,
  });
}

function step(report: SelftestReport, name: string): SelftestStep {
  const found = report.steps.find((s) => s.name === name);
  if (!found) throw new Error(`no step ${name} in ${report.steps.map((s) => s.name).join(', ')}`);
  return found;
}

const statuses = (report: SelftestReport): Record<string, string> => Object.fromEntries(report.steps.map((s) => [s.name, s.status]));

describe('buildReport', () => {
  const s = (name: string, status: SelftestStep['status']): SelftestStep => ({ name, status, ms: 1, detail: '' });

  it('passes when every step that ran passed, skipped ones aside', () => {
    expect(buildReport([s('daemon', 'pass'), s('gpu', 'skip')], 10)).toEqual({ passed: true, ms: 10, steps: [s('daemon', 'pass'), s('gpu', 'skip')] });
  });

  it('fails on any failed step', () => {
    expect(buildReport([s('daemon', 'pass'), s('cpu.close', 'fail'), s('gpu', 'skip')], 10).passed).toBe(false);
  });

  it('does not pass a run in which nothing ran', () => {
    expect(buildReport([s('gpu', 'skip')], 0).passed).toBe(false);
  });
});

describe('Selftest', () => {
  it('passes every CPU step against an honest provider and skips the GPU lease when none is offered', async () => {
    const tenant = new FakeTenant();
    const report = await selftest(tenant).run();
    expect(report.steps.map((s) => s.name)).toEqual(['daemon', 'offer', ...CPU_STEPS, 'gpu']);
    expect(report.steps.filter((s) => s.status === 'fail')).toEqual([]);
    expect(step(report, 'gpu')).toMatchObject({ status: 'skip', detail: 'this provider offers no GPUs' });
    expect(report.passed).toBe(true);
    expect(tenant.countersigned).toEqual([[1n, 1n]]);
    expect(tenant.closed).toEqual([]);
    for (const s of report.steps) expect(s.ms).toBeGreaterThanOrEqual(0);
  });

  it('quotes a small CPU workload that prints the nonce, burns CPU and outlives one metering sample', async () => {
    const tenant = new FakeTenant();
    await selftest(tenant, { sampleIntervalSeconds: 15 }).run();
    const [manifest] = tenant.quoted;
    expect(manifest).toMatchObject({ image: 'busybox:1.36', resources: { cpuMillis: 500, memoryBytes: 64 * 2 ** 20 } });
    expect(manifest!.command).toEqual(['sh', '-c', expect.stringContaining("echo 'selftest abc1'")]);
    expect(manifest!.command![2]).toContain('sleep 16');
    expect(manifest!.maxDurationSeconds).toBeLessThanOrEqual(300);
  });

  it('runs a second lease on one GPU of the offered model, and checks nvidia-smi listed it', async () => {
    const tenant = new FakeTenant();
    tenant.offerResult = anOffer({ gpus: [{ model: 'NVIDIA A100-SXM4-80GB', profile: null, memoryBytes: 80 * 2 ** 30, count: 2 }] });
    const report = await selftest(tenant).run();
    expect(report.passed).toBe(true);
    expect(report.steps.map((s) => s.name)).toEqual(['daemon', 'offer', ...CPU_STEPS, ...CPU_STEPS.map((n) => n.replace('cpu.', 'gpu.'))]);
    expect(tenant.quoted[1]).toMatchObject({ image: 'nvidia/cuda:12.4.1-base-ubuntu22.04', resources: { gpus: { count: 1, model: 'NVIDIA A100-SXM4-80GB' } } });
    expect(step(report, 'gpu.logs').detail).toContain('GPU 0: NVIDIA A100');
  });

  it('fails the GPU lease whose container lists no GPU', async () => {
    const tenant = new FakeTenant();
    tenant.offerResult = anOffer({ gpus: [{ model: 'NVIDIA L4', profile: null, memoryBytes: null, count: 1 }] });
    tenant.logLines = (printed) => printed.filter((l) => !l.line.startsWith('GPU '));
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.payment').status).toBe('pass');
    expect(step(report, 'gpu.logs')).toMatchObject({ status: 'fail', fix: expect.stringContaining('provider doctor') });
    expect(tenant.closed).toEqual([2n]);
  });

  it('skips the GPU lease with --no-gpu, and when every GPU is leased says so', async () => {
    const offered = anOffer({ gpus: [{ model: 'NVIDIA L4', profile: null, memoryBytes: null, count: 1 }] });
    const noGpu = new FakeTenant();
    noGpu.offerResult = offered;
    expect(step(await selftest(noGpu, { gpu: false }).run(), 'gpu')).toMatchObject({ status: 'skip', detail: 'skipped: --no-gpu' });
    const busy = new FakeTenant();
    busy.offerResult = anOffer({ gpus: [{ model: 'NVIDIA L4', profile: null, memoryBytes: null, count: 0 }] });
    expect(step(await selftest(busy).run(), 'gpu')).toMatchObject({ status: 'skip', detail: expect.stringContaining('every one is leased') });
  });

  it('fails at once with "start it" when no daemon answers, and runs nothing else', async () => {
    const tenant = new FakeTenant();
    tenant.offerResult = new ProviderError('PROVIDER_UNREACHABLE', 'GET /v1/offer: fetch failed');
    const report = await selftest(tenant).run();
    expect(step(report, 'daemon')).toMatchObject({ status: 'fail', detail: 'GET /v1/offer: fetch failed', fix: expect.stringContaining('start it: provider start') });
    expect(report.steps.filter((s) => s.name !== 'daemon').every((s) => s.status === 'skip' && s.detail === 'not run: daemon failed')).toBe(true);
    expect(report.passed).toBe(false);
    expect(tenant.quoted).toEqual([]);
  });

  it('fails the offer of a draining daemon without quoting', async () => {
    const tenant = new FakeTenant();
    tenant.offerResult = anOffer({ accepting: false });
    const report = await selftest(tenant).run();
    expect(step(report, 'offer')).toMatchObject({ status: 'fail', detail: expect.stringContaining('draining') });
    expect(tenant.quoted).toEqual([]);
  });

  it('turns a refused quote into the fix for its code, and opens nothing', async () => {
    const tenant = new FakeTenant();
    tenant.quoteError = new ProviderRefusedError(403, 'IMAGE_DENIED', 'image busybox:1.36 is not allowed');
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.quote')).toMatchObject({ status: 'fail', fix: expect.stringContaining('admission.images.allow') });
    expect(tenant.opened).toEqual([]);
    expect(report.steps.some((s) => s.name === 'cpu.close')).toBe(false);
  });

  it('says no lease was opened when openLease itself failed, and closes nothing', async () => {
    const tenant = new FakeTenant();
    tenant.openError = new ProviderError('TX_REVERTED', 'openLease reverted: ERC20InsufficientBalance');
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.open')).toMatchObject({ status: 'fail', detail: expect.stringContaining('ERC20InsufficientBalance') });
    expect(step(report, 'cpu.close')).toMatchObject({ status: 'pass', detail: 'no lease was opened' });
    expect(tenant.closed).toEqual([]);
  });

  it('closes the lease on-chain when a step after the open fails, and skips the rest', async () => {
    const tenant = new FakeTenant();
    tenant.logLines = (printed) => printed.slice(1);
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.logs')).toMatchObject({ status: 'fail', detail: expect.stringContaining('without "selftest abc1"') });
    expect(statuses(report)).toMatchObject({ 'cpu.exit': 'skip', 'cpu.payment': 'skip', 'cpu.close': 'pass', gpu: 'skip' });
    expect(tenant.closed).toEqual([1n]);
    expect(report.passed).toBe(false);
  });

  it('does not close a lease the daemon has already closed on-chain', async () => {
    const tenant = new FakeTenant();
    tenant.states = ['pulling', 'failed'];
    tenant.closedOnChain = true;
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.running')).toMatchObject({ status: 'fail', detail: 'lease 1 failed before it ran: pull-failed', fix: expect.stringContaining('docker pull busybox:1.36') });
    expect(step(report, 'cpu.close')).toMatchObject({ status: 'pass', detail: expect.stringContaining('closed on-chain already') });
    expect(tenant.closed).toEqual([]);
  });

  it('fails a workload that exits non-zero', async () => {
    const tenant = new FakeTenant();
    tenant.exitCode = 3;
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.exit')).toMatchObject({ status: 'fail', detail: 'the workload exited with 3' });
    expect(tenant.closed).toEqual([1n]);
  });

  it('fails a lease that ended for another reason than its workload exiting', async () => {
    const tenant = new FakeTenant();
    tenant.endReason = 'max-duration';
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.exit')).toMatchObject({ status: 'fail', detail: expect.stringContaining('max-duration'), fix: expect.stringContaining('docker pull') });
  });

  it('fails metering that shows no CPU time', async () => {
    const tenant = new FakeTenant();
    tenant.cpuMillis = 0n;
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.metering')).toMatchObject({ status: 'fail', fix: expect.stringContaining('cgroup') });
    expect(tenant.countersigned).toEqual([]);
  });

  it('refuses to countersign a final checkpoint that does not commit to exit 0 and the streamed logs', async () => {
    const tenant = new FakeTenant();
    tenant.digestOverride = `0x${'33'.repeat(32)}`;
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.checkpoint')).toMatchObject({ status: 'fail', detail: expect.stringContaining('does not commit to exit code 0') });
    expect(tenant.countersigned).toEqual([]);
  });

  it('fails a payment that differs from the final checkpoint', async () => {
    const tenant = new FakeTenant();
    tenant.paid = (owed) => owed + 1n;
    const report = await selftest(tenant).run();
    expect(step(report, 'cpu.payment')).toMatchObject({ status: 'fail', detail: expect.stringContaining('paid 778') });
  });

  it('bounds every wait by the overall timeout, says what it saw last, and closes the lease', async () => {
    const tenant = new FakeTenant();
    tenant.states = ['pulling'];
    const report = await selftest(tenant, { timeoutMs: 300 }).run();
    expect(step(report, 'cpu.running')).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/^no result within 0 s \(the time --timeout left\); last seen: state pulling$/),
      fix: expect.stringContaining('--timeout'),
    });
    expect(tenant.closed).toEqual([1n]);
    expect(report.ms).toBeLessThan(2_000);
  });

  it('closes a lease whose openLease landed after its step had timed out', async () => {
    const tenant = new FakeTenant();
    tenant.openDelayMs = 300;
    const report = await selftest(tenant, { timeoutMs: 100 }).run();
    expect(step(report, 'cpu.open').status).toBe('fail');
    expect(step(report, 'cpu.close')).toMatchObject({ status: 'pass', detail: expect.stringContaining('closed lease 1') });
    expect(tenant.closed).toEqual([1n]);
  });

  it('when interrupted, fails the step under way and still closes the lease', async () => {
    const tenant = new FakeTenant();
    tenant.states = ['pulling'];
    const controller = new AbortController();
    const running = selftest(tenant, { signal: controller.signal, pollIntervalMs: 20 }).run();
    setTimeout(() => controller.abort(new Error('stopped by SIGINT')), 100);
    const report = await running;
    expect(step(report, 'cpu.running')).toMatchObject({ status: 'fail', detail: 'interrupted: stopped by SIGINT' });
    expect(tenant.closed).toEqual([1n]);
  });
});
