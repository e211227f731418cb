import { formatBytes } from '../util/bytes';
import { table } from '../util/text-table';
import type { CapacityReport, Gpu } from './types';

/** The human form of the report, for `provider capacity` on a terminal. */
export function formatCapacityText(report: CapacityReport): string {
  const out: string[] = [];
  const { cpu, memory, disk, gpus, docker, allocatable } = report;

  const summary: string[][] = [];
  summary.push(['CPU', cpu.ok ? `${cpu.model}: ${plural(cpu.cores, 'core')}, ${plural(cpu.threads, 'thread')}, ${plural(cpu.sockets, 'socket')}` : 'not detected (see below)']);
  summary.push(['Memory', memory.ok ? `${formatBytes(memory.totalBytes)} total, ${formatBytes(memory.availableBytes)} available` : 'not detected (see below)']);
  summary.push([
    'Disk',
    disk.ok
      ? `${formatBytes(disk.freeBytes)} free of ${formatBytes(disk.totalBytes)} on ${disk.mount} (${disk.filesystem}, ${disk.type}) holding ${disk.dataDir}${disk.probedPath === disk.dataDir ? '' : ` (not created yet; measured ${disk.probedPath})`}`
      : 'not detected (see below)',
  ]);
  summary.push([
    'GPUs',
    gpus.ok
      ? gpus.devices.length === 0
        ? `none (driver ${gpus.driverVersion ?? 'unknown'} lists no GPU)`
        : `${plural(gpus.devices.length, 'NVIDIA GPU')}, driver ${gpus.driverVersion ?? 'unknown'}, CUDA ${gpus.cudaVersion ?? 'unknown'}`
      : 'not detected (see below)',
  ]);
  if (docker.ok) {
    const passthrough = docker.gpuPassthrough;
    summary.push(['Docker', `${docker.engineVersion ?? 'unknown version'} (API ${docker.apiVersion ?? 'unknown'}) on ${docker.os ?? 'unknown OS'}, ${docker.architecture ?? ''}`.replace(/, $/, '')]);
    summary.push(['', `cgroup ${docker.cgroupVersion === null ? 'version unknown' : `v${docker.cgroupVersion}`} (${docker.cgroupDriver ?? 'unknown driver'}), storage driver ${docker.storageDriver ?? 'unknown'}`]);
    summary.push(['', `runtimes ${docker.runtimes.join(', ') || 'none'} (default ${docker.defaultRuntime ?? 'unknown'})`]);
    summary.push(['', passthrough.possible ? `GPU passthrough: yes, via ${passthrough.via.map((way) => (way === 'hook' ? `the NVIDIA hook (${passthrough.nvidiaHook})` : way === 'runtime' ? 'the nvidia runtime' : 'CDI')).join(' and ')}` : `GPU passthrough: no: ${passthrough.reason}`]);
    summary.push(['', `sandbox: ${docker.sandbox.why}`]);
    if (docker.sandbox.warning !== null) summary.push(['', `sandbox WARNING: ${docker.sandbox.warning}${docker.sandbox.fix === null ? '' : `; fix: ${docker.sandbox.fix}`}`]);
  } else {
    summary.push(['Docker', 'not reachable (see below)']);
  }
  out.push(...table(summary));

  if (gpus.ok && gpus.devices.length > 0) {
    out.push('', 'GPUs');
    const rows: string[][] = [['IDX', 'MODEL', 'UUID', 'MEMORY', 'USED', 'UTIL', 'MIG', 'BUS ID']];
    for (const gpu of gpus.devices) {
      rows.push([
        String(gpu.index),
        gpu.model,
        gpu.uuid,
        size(gpu.memory.totalBytes),
        size(gpu.memory.usedBytes),
        gpu.utilization.gpuPercent === null ? '-' : `${gpu.utilization.gpuPercent}%`,
        migLabel(gpu),
        gpu.busId ?? '-',
      ]);
      for (const device of gpu.mig.devices) {
        rows.push([
          `${gpu.index}:${device.index}`,
          `  MIG ${device.profile ?? '(profile unknown)'}`,
          device.uuid ?? '(UUID unknown)',
          size(device.memory.totalBytes),
          size(device.memory.usedBytes),
          '-',
          `gi ${device.gpuInstanceId ?? '?'} ci ${device.computeInstanceId ?? '?'}`,
          '',
        ]);
      }
    }
    out.push(...table(rows, '  '));
    if (report.gpuHealth) {
      out.push('', 'GPU health (this read; a running daemon\'s verdict, with Xid errors and recovery: provider status)');
      const health: string[][] = [['IDX', 'HEALTH', 'TEMP', 'PCIE', 'WHY']];
      for (const line of report.gpuHealth) {
        const gpu = gpus.devices.find((d) => d.uuid === line.uuid);
        const pcie = gpu && gpu.pcie.maxGen !== null ? `gen ${gpu.pcie.maxGen} x${gpu.pcie.maxWidth ?? '?'}` : '-';
        health.push([String(line.index), line.healthy ? 'ok' : 'UNHEALTHY', line.temperatureCelsius === null ? '-' : `${line.temperatureCelsius} C`, pcie, line.reason ?? '']);
      }
      out.push(...table(health, '  '));
    }
  }

  out.push('', 'Allocatable (detected minus reserve)');
  const reserve = allocatable.reserve;
  out.push(
    ...table(
      [
        ['RESOURCE', 'DETECTED', 'RESERVE', 'ALLOCATABLE'],
        ['cpu', cpu.ok ? millis(cpu.threads * 1000) : '-', millis(reserve.cpuMillis), millis(allocatable.cpuMillis)],
        ['memory', memory.ok ? formatBytes(memory.totalBytes) : '-', formatBytes(reserve.memoryBytes), formatBytes(allocatable.memoryBytes)],
        ['disk (free)', disk.ok ? formatBytes(disk.freeBytes) : '-', formatBytes(reserve.diskBytes), formatBytes(allocatable.diskBytes)],
        ['gpus', gpus.ok ? String(countUnits(report)) : '-', '-', String(allocatable.gpus.length)],
      ],
      '  ',
    ),
  );
  if (allocatable.gpus.length > 0) {
    out.push('', 'GPUs offered');
    out.push(
      ...table(
        [
          ['IDX', 'KIND', 'MODEL', 'UUID', 'MEMORY'],
          ...allocatable.gpus.map((unit) => [
            unit.migIndex === null ? String(unit.gpuIndex) : `${unit.gpuIndex}:${unit.migIndex}`,
            unit.kind === 'mig' ? `MIG ${unit.profile ?? ''}`.trim() : 'GPU',
            unit.model,
            unit.uuid,
            size(unit.memoryBytes),
          ]),
        ],
        '  ',
      ),
    );
  }
  if (allocatable.gpusNotOffered.length > 0) {
    // One reason usually covers many units (no nvidia runtime: every GPU): say it once per group.
    out.push('', 'GPUs not offered');
    const groups = new Map<string, string[][]>();
    for (const unit of allocatable.gpusNotOffered) {
      const key = `${unit.reason}: ${unit.detail}`;
      const row = [unit.migIndex === null ? `GPU ${unit.gpuIndex}` : `MIG ${unit.gpuIndex}:${unit.migIndex}`, unit.model, unit.uuid ?? '(UUID unknown)'];
      groups.set(key, [...(groups.get(key) ?? []), row]);
    }
    for (const [reason, rows] of groups) {
      out.push(`  ${reason}`);
      out.push(...table(rows, '    '));
    }
  }

  if (report.notDetected.length > 0) {
    out.push('', 'Not detected');
    for (const missing of report.notDetected) {
      out.push(`  ${missing.part}: ${missing.reason} [${missing.code}]`);
      if (missing.fix) out.push(`    fix: ${missing.fix}`);
    }
  }
  if (report.warnings.length > 0) {
    out.push('', 'Warnings');
    for (const warning of report.warnings) out.push(`  ${warning}`);
  }
  return `${out.join('\n')}\n`;
}

function countUnits(report: CapacityReport): number {
  if (!report.gpus.ok) return 0;
  return report.gpus.devices.reduce((n, gpu) => n + (gpu.mig.current === 'enabled' ? gpu.mig.devices.length : 1), 0);
}

function migLabel(gpu: Gpu): string {
  if (gpu.mig.current === null) return '-';
  const pending = gpu.mig.pending !== null && gpu.mig.pending !== gpu.mig.current ? ` (${gpu.mig.pending} after reset)` : '';
  return `${gpu.mig.current === 'enabled' ? 'on' : 'off'}${pending}`;
}

function size(bytes: number | null): string {
  return bytes === null ? '-' : formatBytes(bytes);
}

function millis(value: number): string {
  return `${value}m`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

