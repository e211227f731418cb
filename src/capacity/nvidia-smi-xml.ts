import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { ProviderError } from '../errors';
import { parseBytes } from '../util/bytes';
import type { GpuHealthReading, GpuInventory, MigMode, PcieLink } from './types';

/**
 * What `nvidia-smi -q -x` says about one MIG device. Its UUID and profile name are not in this
 * document (nvidia-smi prints them only in `-L`), so they are joined in later.
 */
export interface XmlMigDevice {
  index: number;
  gpuInstanceId: number | null;
  computeInstanceId: number | null;
  memory: { totalBytes: number | null; usedBytes: number | null; freeBytes: number | null };
}

export interface XmlGpu {
  /** Position in the document, which is nvidia-smi's enumeration order (PCI bus order). */
  position: number;
  uuid: string;
  model: string;
  busId: string | null;
  memory: { totalBytes: number | null; usedBytes: number | null; freeBytes: number | null; reservedBytes: number | null };
  utilization: { gpuPercent: number | null; memoryPercent: number | null };
  mig: { current: MigMode; pending: MigMode; devices: XmlMigDevice[] };
  pcie: PcieLink;
  health: GpuHealthReading;
}

export interface XmlInventory {
  driverVersion: string | null;
  cudaVersion: string | null;
  gpus: XmlGpu[];
}

type Node = Record<string, unknown>;

/**
 * Parses `nvidia-smi -q -x` from the R450 series on. Element names this reads, by era:
 *
 * - `driver_version` and `cuda_version` at the top; nvsmi_device_v13 drivers also write
 *   `kmd_version` / `cuda_umd_version` and deprecate the old pair, so both are read.
 * - `fb_memory_usage` has `total/used/free`, and `reserved` since R510.
 * - R535 renamed `clocks_throttle_reasons` to `clocks_event_reasons` and `power_readings` to
 *   `gpu_power_readings`, and added `addressing_mode`; R575/580 moved `gpu_module_id` into
 *   `platformInfo/module_id` and split `power_draw` into `average_`/`instant_power_draw`.
 *   None of those is read here, so those renames cannot break detection.
 * - `mig_devices` is the text `None` on a GPU without MIG devices, or holds `mig_device` elements
 *   (`index`, `gpu_instance_id`, `compute_instance_id`, `fb_memory_usage`).
 *
 * Values are text with units (`24564 MiB`, `35 %`) or placeholders (`N/A`, `[N/A]`,
 * `[Insufficient Permissions]`, `Requested functionality has been deprecated`): every placeholder
 * reads as null, never as zero.
 */
export function parseNvidiaSmiXml(xml: string): XmlInventory {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw badOutput(`nvidia-smi -q -x printed something that is not XML (${valid.err.msg} at line ${valid.err.line})`);
  }
  const parser = new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    // Keep every value as text: bus ids ("00") and versions ("12.10") must not become numbers.
    parseTagValue: false,
    parseAttributeValue: false,
    trimValues: true,
  });
  const doc = parser.parse(xml) as Node;
  const log = doc.nvidia_smi_log;
  if (!isNode(log)) {
    throw badOutput('nvidia-smi -q -x printed XML without an <nvidia_smi_log> element');
  }
  const gpus = asArray(log.gpu).filter(isNode).map((gpu, position) => readGpu(gpu, position));
  return {
    driverVersion: text(log.driver_version) ?? text(log.kmd_version),
    cudaVersion: text(log.cuda_version) ?? text(log.cuda_umd_version),
    gpus,
  };
}

function readGpu(gpu: Node, position: number): XmlGpu {
  const uuid = text(gpu.uuid);
  if (!uuid) throw badOutput(`nvidia-smi -q -x lists GPU #${position} without a <uuid>`);
  const pci = node(gpu.pci);
  const memory = node(gpu.fb_memory_usage);
  const utilization = node(gpu.utilization);
  const migMode = node(gpu.mig_mode);
  return {
    position,
    uuid,
    model: text(gpu.product_name) ?? 'unknown NVIDIA GPU',
    busId: text(pci.pci_bus_id) ?? text(gpu['@_id']),
    memory: {
      totalBytes: bytes(memory.total),
      usedBytes: bytes(memory.used),
      freeBytes: bytes(memory.free),
      reservedBytes: bytes(memory.reserved),
    },
    utilization: { gpuPercent: percent(utilization.gpu_util), memoryPercent: percent(utilization.memory_util) },
    mig: {
      current: migModeOf(migMode.current_mig),
      pending: migModeOf(migMode.pending_mig),
      devices: asArray(node(gpu.mig_devices).mig_device).filter(isNode).map(readMigDevice),
    },
    pcie: readPcie(node(pci.pci_gpu_link_info)),
    health: readHealth(gpu),
  };
}

function readPcie(link: Node): PcieLink {
  const gen = node(link.pcie_gen);
  const widths = node(link.link_widths);
  const width = (value: unknown) => {
    const match = /^(\d+)x$/i.exec(text(value) ?? '');
    return match ? Number(match[1]) : null;
  };
  return {
    currentGen: integer(gen.current_link_gen),
    maxGen: integer(gen.max_link_gen),
    currentWidth: width(widths.current_link_width),
    maxWidth: width(widths.max_link_width),
  };
}

/**
 * What health rules read. ECC counters are `<volatile>` (since the last driver load), DRAM and
 * SRAM; R575+ splits SRAM uncorrectable into `_parity`/`_secded`, R470 and older name them
 * `double_bit/total`. Clock event reasons are read under both the R535 and the older name.
 */
function readHealth(gpu: Node): GpuHealthReading {
  const ecc = node(node(gpu.ecc_errors).volatile);
  const eccParts = [ecc.dram_uncorrectable, ecc.sram_uncorrectable, ecc.sram_uncorrectable_parity, ecc.sram_uncorrectable_secded, node(ecc.double_bit).total].map(integer);
  const retired = node(gpu.retired_pages);
  const remapped = node(gpu.remapped_rows);
  const reasonsNode = isNode(gpu.clocks_event_reasons) ? gpu.clocks_event_reasons : node(gpu.clocks_throttle_reasons);
  const activeReasons = Object.entries(reasonsNode)
    .filter(([, value]) => text(value)?.toLowerCase() === 'active')
    .map(([key]) => key.replace(/^clocks_(event|throttle)_reason_/, ''));
  return {
    temperatureCelsius: celsius(node(gpu.temperature).gpu_temp),
    eccUncorrectableVolatile: eccParts.every((part) => part === null) ? null : eccParts.reduce<number>((sum, part) => sum + (part ?? 0), 0),
    pendingRetirement: yes(retired.pending_retirement) || yes(retired.pending_blacklist),
    remapPending: yes(remapped.remapped_row_pending),
    remapFailure: yes(remapped.remapped_row_failure),
    activeClockEvents: activeReasons,
    recoveryAction: text(gpu.gpu_recovery_action),
  };
}

function readMigDevice(device: Node, position: number): XmlMigDevice {
  const memory = node(device.fb_memory_usage);
  return {
    index: integer(device.index) ?? position,
    gpuInstanceId: integer(device.gpu_instance_id),
    computeInstanceId: integer(device.compute_instance_id),
    memory: { totalBytes: bytes(memory.total), usedBytes: bytes(memory.used), freeBytes: bytes(memory.free) },
  };
}

/** Joins what `-L` adds (index, MIG UUIDs and profiles) to what `-q -x` says. */
export function toInventory(
  xml: XmlInventory,
  list: ReadonlyMap<string, { index: number; migDevices: ReadonlyMap<number, { uuid: string; profile: string }> }> | undefined,
): GpuInventory {
  return {
    driverVersion: xml.driverVersion,
    cudaVersion: xml.cudaVersion,
    devices: xml.gpus.map((gpu) => {
      const listed = list?.get(gpu.uuid);
      return {
        index: listed?.index ?? gpu.position,
        uuid: gpu.uuid,
        model: gpu.model,
        busId: gpu.busId,
        driverVersion: xml.driverVersion,
        cudaVersion: xml.cudaVersion,
        memory: gpu.memory,
        utilization: gpu.utilization,
        pcie: gpu.pcie,
        mig: {
          current: gpu.mig.current,
          pending: gpu.mig.pending,
          devices: gpu.mig.devices.map((device) => {
            const listedDevice = listed?.migDevices.get(device.index);
            return {
              index: device.index,
              uuid: listedDevice?.uuid ?? null,
              profile: listedDevice?.profile ?? null,
              gpuInstanceId: device.gpuInstanceId,
              computeInstanceId: device.computeInstanceId,
              memory: device.memory,
            };
          }),
        },
      };
    }),
  };
}

function badOutput(message: string): ProviderError {
  return new ProviderError('NVIDIA_SMI_BAD_OUTPUT', message, {
    fix: 'run `nvidia-smi -q -x` by hand; if it prints garbage, reinstall the NVIDIA driver (or point gpu.nvidiaSmiPath at the real nvidia-smi)',
  });
}

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function node(value: unknown): Node {
  return isNode(value) ? value : {};
}

function asArray(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

const PLACEHOLDERS = /^(n\/a|\[n\/a\]|none|unknown|unknown error|not supported|\[not supported\]|\[insufficient permissions\]|\[unknown error\]|requested functionality has been deprecated|gpu is lost)$/i;

/** Element text, or null for an empty element or one of nvidia-smi's placeholders. */
function text(value: unknown): string | null {
  let raw: unknown = value;
  if (isNode(raw)) raw = raw['#text'];
  if (typeof raw !== 'string' && typeof raw !== 'number') return null;
  const trimmed = String(raw).trim();
  return trimmed === '' || PLACEHOLDERS.test(trimmed) ? null : trimmed;
}

function bytes(value: unknown): number | null {
  const raw = text(value);
  return raw === null ? null : (parseBytes(raw) ?? null);
}

function percent(value: unknown): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*%$/.exec(text(value) ?? '');
  return match ? Number(match[1]) : null;
}

function integer(value: unknown): number | null {
  const raw = text(value);
  return raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
}

function celsius(value: unknown): number | null {
  const match = /^(-?\d+(?:\.\d+)?)\s*C$/.exec(text(value) ?? '');
  return match ? Number(match[1]) : null;
}

function yes(value: unknown): boolean {
  return text(value)?.toLowerCase() === 'yes';
}

function migModeOf(value: unknown): MigMode {
  const raw = text(value)?.toLowerCase();
  if (raw === 'enabled') return 'enabled';
  if (raw === 'disabled') return 'disabled';
  return null;
}
