import { HEALTHY, judgeGpu, nextHealth, parseNvidiaSmiXml, parseXidLines, pciKey, type GpuHealthState, type HealthFinding } from '../../../src/capacity';
import type { GpuHealthReading } from '../../../src/capacity';
import { gpuHealthSchema } from '../../../src/config/schema';
import { nvidiaSmiFixture } from './fixtures';

const rules = gpuHealthSchema.parse(undefined);

function reading(overrides: Partial<GpuHealthReading> = {}): GpuHealthReading {
  return {
    temperatureCelsius: 40,
    eccUncorrectableVolatile: 0,
    pendingRetirement: false,
    remapPending: false,
    remapFailure: false,
    activeClockEvents: [],
    recoveryAction: 'None',
    ...overrides,
  };
}

describe('health readings from recorded nvidia-smi -q -x', () => {
  it('reads an idle H100 (R580 names) as temperature, zero ECC, nothing pending and gpu_idle', () => {
    const [gpu] = parseNvidiaSmiXml(nvidiaSmiFixture('h100x8-580').xml).gpus;
    expect(gpu!.health).toEqual({
      temperatureCelsius: expect.any(Number),
      eccUncorrectableVolatile: 0,
      pendingRetirement: false,
      remapPending: false,
      remapFailure: false,
      activeClockEvents: ['gpu_idle'],
      // "None" is one of nvidia-smi's placeholders: no recovery action reads as null.
      recoveryAction: null,
    });
  });

  it('reads a GeForce without ECC as null ECC, and the R535 clocks_event_reasons', () => {
    const [gpu] = parseNvidiaSmiXml(nvidiaSmiFixture('rtx4090-535').xml).gpus;
    expect(gpu!.health.eccUncorrectableVolatile).toBeNull();
    expect(gpu!.health.temperatureCelsius).toBe(44);
    expect(gpu!.health.activeClockEvents).not.toContain('hw_slowdown');
  });

  it('reads the R510 clocks_throttle_reasons of a T4', () => {
    const [gpu] = parseNvidiaSmiXml(nvidiaSmiFixture('t4-510').xml).gpus;
    expect(gpu!.health.activeClockEvents).toEqual(['gpu_idle']);
    expect(gpu!.health.eccUncorrectableVolatile).toBe(0);
  });

  it('adds SRAM parity/SECDED and DRAM uncorrectable errors, and reads Yes for pending remaps and failures', () => {
    const xml = `<nvidia_smi_log><gpu id="00000000:18:00.0"><uuid>GPU-1</uuid>
<ecc_errors><volatile><sram_uncorrectable_parity>1</sram_uncorrectable_parity><sram_uncorrectable_secded>2</sram_uncorrectable_secded><dram_uncorrectable>3</dram_uncorrectable></volatile>
<aggregate><dram_uncorrectable>9</dram_uncorrectable></aggregate></ecc_errors>
<retired_pages><pending_retirement>Yes</pending_retirement></retired_pages>
<remapped_rows><remapped_row_pending>Yes</remapped_row_pending><remapped_row_failure>Yes</remapped_row_failure></remapped_rows>
<clocks_event_reasons><clocks_event_reason_hw_power_brake_slowdown>Active</clocks_event_reason_hw_power_brake_slowdown></clocks_event_reasons>
<temperature><gpu_temp>93 C</gpu_temp></temperature></gpu></nvidia_smi_log>`;
    expect(parseNvidiaSmiXml(xml).gpus[0]!.health).toEqual({
      temperatureCelsius: 93,
      eccUncorrectableVolatile: 6,
      pendingRetirement: true,
      remapPending: true,
      remapFailure: true,
      activeClockEvents: ['hw_power_brake_slowdown'],
      recoveryAction: null,
    });
  });
});

describe('Xid lines of the kernel log', () => {
  it('reads the time, the GPU address and the Xid, and nothing else', () => {
    const log = [
      '[    3.120000] nvidia: loading out-of-tree module taints kernel.',
      '[ 5123.456789] NVRM: Xid (PCI:0000:3b:00): 79, pid=2345, name=python3, GPU has fallen off the bus.',
      "[ 5200.000001] NVRM: Xid (PCI:0000:18:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU.",
    ].join('\n');
    expect(parseXidLines(log)).toEqual([
      { at: 5123.456789, pci: '0:3b:00', xid: 79, text: 'pid=2345, name=python3, GPU has fallen off the bus.' },
      { at: 5200.000001, pci: '0:18:00', xid: 48, text: "pid='<unknown>', name=<unknown>, An uncorrectable double bit error (DBE) has been detected on GPU." },
    ]);
  });

  it('compares the kernel\'s and nvidia-smi\'s ways of writing one PCI address', () => {
    expect(pciKey('00000000:3B:00.0')).toBe(pciKey('0000:3b:00'));
    expect(pciKey('00000001:3B:00.0')).not.toBe(pciKey('0000:3b:00'));
  });
});

describe('judgeGpu (the rules, defaults)', () => {
  const severities = (findings: HealthFinding[]) => findings.map((f) => `${f.code}/${f.severity}`);

  it.each([
    ['a healthy reading', { reading: reading(), xids: [] }, []],
    ['a lost GPU', { reading: null, missing: { code: 'gpu-lost' as const, detail: 'GPU is lost' }, xids: [] }, ['gpu-lost/fatal']],
    ['nvidia-smi failing', { reading: null, missing: { code: 'unreadable' as const, detail: 'timeout' }, xids: [] }, ['unreadable/withdraw']],
    ['Xid 79 (fallen off the bus)', { reading: reading(), xids: [{ xid: 79, text: '' }] }, ['xid/fatal']],
    ['Xid 13 (the tenant\'s own fault)', { reading: reading(), xids: [{ xid: 13, text: '' }] }, []],
    ['an Xid in neither list (8)', { reading: reading(), xids: [{ xid: 8, text: '' }] }, ['xid/withdraw']],
    ['pending page retirement', { reading: reading({ pendingRetirement: true }), xids: [] }, ['pending-retirement/withdraw']],
    ['a row remapping failure', { reading: reading({ remapFailure: true }), xids: [] }, ['remap-failure/fatal']],
    ['HW thermal slowdown', { reading: reading({ activeClockEvents: ['gpu_idle', 'hw_thermal_slowdown'] }), xids: [] }, ['throttle/withdraw']],
    ['SW power cap (normal under load)', { reading: reading({ activeClockEvents: ['sw_power_cap'] }), xids: [] }, []],
    ['90 °C', { reading: reading({ temperatureCelsius: 90 }), xids: [] }, ['temperature/withdraw']],
    ['89 °C', { reading: reading({ temperatureCelsius: 89 }), xids: [] }, []],
  ])('%s', (_name, observation, expected) => {
    expect(severities(judgeGpu(observation, reading(), rules))).toEqual(expected);
  });

  it('is fatal on a rise of uncorrectable ECC errors, and not on the same count read again', () => {
    expect(severities(judgeGpu({ reading: reading({ eccUncorrectableVolatile: 2 }), xids: [] }, reading(), rules))).toEqual(['ecc-uncorrectable/fatal']);
    expect(judgeGpu({ reading: reading({ eccUncorrectableVolatile: 2 }), xids: [] }, reading({ eccUncorrectableVolatile: 2 }), rules)).toEqual([]);
  });

  it('withdraws, but does not fail leases, for ECC errors already there at the first reading', () => {
    expect(severities(judgeGpu({ reading: reading({ eccUncorrectableVolatile: 1 }), xids: [] }, undefined, rules))).toEqual(['ecc-uncorrectable/withdraw']);
  });

  it('follows the config: ECC only withdraws, Xid 8 ignored', () => {
    const custom = { ...rules, eccUncorrectable: 'withdraw' as const, xid: { fatal: [], ignore: [8] } };
    expect(severities(judgeGpu({ reading: reading({ eccUncorrectableVolatile: 3 }), xids: [{ xid: 8, text: '' }] }, reading(), custom))).toEqual(['ecc-uncorrectable/withdraw']);
  });
});

describe('nextHealth (the state machine)', () => {
  const withdraw: HealthFinding = { code: 'temperature', severity: 'withdraw', detail: '95 °C' };
  const fatal: HealthFinding = { code: 'gpu-lost', severity: 'fatal', detail: 'GPU is lost' };
  const r = { ...rules, recoverAfterSeconds: 60 };

  it('withdraws at once and tells the leases, without ending them, on a withdraw finding', () => {
    expect(nextHealth(HEALTHY, [withdraw], 1_000, r)).toEqual({
      state: { status: 'unhealthy', findings: [withdraw], since: 1_000 },
      effects: [{ type: 'withdraw', reason: 'temperature: 95 °C' }, { type: 'warn-leases', detail: 'temperature: 95 °C' }],
    });
  });

  it('ends the leases once on a fatal finding, also when it follows a withdraw finding, and not again while it lasts', () => {
    const first = nextHealth(HEALTHY, [fatal], 1_000, r);
    expect(first.effects).toEqual([{ type: 'withdraw', reason: 'gpu-lost: GPU is lost' }, { type: 'fail-leases', detail: 'gpu-lost: GPU is lost', at: 1_000 }]);
    expect(nextHealth(first.state, [fatal], 2_000, r).effects).toEqual([]);
    const warm: GpuHealthState = { status: 'unhealthy', findings: [withdraw], since: 500 };
    expect(nextHealth(warm, [fatal], 3_000, r)).toEqual({
      state: { status: 'unhealthy', findings: [fatal], since: 500 },
      effects: [{ type: 'fail-leases', detail: 'gpu-lost: GPU is lost', at: 3_000 }],
    });
  });

  it('returns to sale only after reading healthy for recoverAfterSeconds, and starts over on a relapse', () => {
    const sick = nextHealth(HEALTHY, [withdraw], 0, r).state;
    const recovering = nextHealth(sick, [], 10_000, r);
    expect(recovering).toEqual({ state: { status: 'recovering', findings: [withdraw], since: 10_000 }, effects: [] });
    expect(nextHealth(recovering.state, [], 69_999, r).state.status).toBe('recovering');
    const relapse = nextHealth(recovering.state, [withdraw], 50_000, r);
    expect(relapse).toEqual({ state: { status: 'unhealthy', findings: [withdraw], since: 50_000 }, effects: [] });
    const again = nextHealth(nextHealth(relapse.state, [], 60_000, r).state, [], 120_000, r);
    expect(again).toEqual({ state: { status: 'healthy', findings: [], since: 120_000 }, effects: [{ type: 'restore' }] });
  });
});
