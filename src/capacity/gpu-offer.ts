import type { ProviderConfig } from '../config';
import type { Gpu } from './types';

export type GpuOffer = ProviderConfig['gpu']['offer'];

/**
 * Which GPUs and MIG devices `gpu.offer` selects. A list entry is a GPU index (`0`, or `"0"`), a
 * GPU UUID (`GPU-...`, selecting the card or, under MIG, all its MIG devices) or a MIG device
 * UUID (`MIG-...`, selecting that device alone). UUIDs compare case-insensitively, as NVML does.
 */
export interface GpuSelection {
  gpuSelected(gpu: Gpu): boolean;
  migSelected(gpu: Gpu, migUuid: string | null): boolean;
  /** List entries that name nothing on this machine: a typo, or a card that has gone. */
  unmatched(gpus: readonly Gpu[]): string[];
}

export function selectGpus(offer: GpuOffer): GpuSelection {
  if (offer === 'all' || offer === 'none') {
    const all = offer === 'all';
    return { gpuSelected: () => all, migSelected: () => all, unmatched: () => [] };
  }
  const indices = new Set<number>();
  const uuids = new Set<string>();
  for (const entry of offer) {
    if (typeof entry === 'number') indices.add(entry);
    else if (/^\d+$/.test(entry.trim())) indices.add(Number(entry.trim()));
    else uuids.add(entry.trim().toLowerCase());
  }
  const gpuSelected = (gpu: Gpu) => indices.has(gpu.index) || uuids.has(gpu.uuid.toLowerCase());
  return {
    gpuSelected,
    migSelected: (gpu, migUuid) => gpuSelected(gpu) || (migUuid !== null && uuids.has(migUuid.toLowerCase())),
    unmatched: (gpus) =>
      offer
        .filter((entry) => {
          const text = String(entry).trim();
          if (/^\d+$/.test(text)) return !gpus.some((gpu) => gpu.index === Number(text));
          const wanted = text.toLowerCase();
          return !gpus.some((gpu) => gpu.uuid.toLowerCase() === wanted || gpu.mig.devices.some((d) => d.uuid?.toLowerCase() === wanted));
        })
        .map(String),
  };
}
