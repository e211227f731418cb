import type { AllocatableGpu } from '../capacity';
import { ProviderError } from '../errors';
import type { Manifest } from '../runtime';
import { parseBytes } from '../util/bytes';

type GpuRequest = Manifest['resources']['gpus'];

/** The machine-wide facts a GPU constraint is judged on (one driver serves every GPU of a host). */
export interface GpuFacts {
  driverVersion: string | null;
  cudaVersion: string | null;
}

/** Whether a dotted version (`535.129.03`, `12.2`) is at least `min`, number by number. */
export function versionAtLeast(version: string, min: string): boolean {
  const have = version.split('.').map(Number);
  const want = min.split('.').map(Number);
  for (let i = 0; i < Math.max(have.length, want.length); i += 1) {
    const a = have[i] ?? 0;
    const b = want[i] ?? 0;
    if (a !== b) return a > b;
  }
  return true;
}

function nameOf(gpu: AllocatableGpu): string {
  return gpu.profile ? `${gpu.model} ${gpu.profile}` : gpu.model;
}

/** The smallest memory a unit must have: minMemoryBytes, or minMemory read as a size. */
export function minMemoryOf(request: GpuRequest): number | undefined {
  const sizes = [request.minMemoryBytes, request.minMemory === undefined ? undefined : parseBytes(request.minMemory)].filter((v): v is number => v !== undefined);
  return sizes.length === 0 ? undefined : Math.max(...sizes);
}

/**
 * Which units a request's constraints accept, checked one field at a time against every unit this
 * machine sells (free or not): the first field nothing here could meet is refused with
 * GPU_CONSTRAINT_UNMET, naming it and what there is. A request that this machine could meet but
 * not now is left to the ledger (CAPACITY_EXHAUSTED).
 */
export function gpuFilter(request: GpuRequest, units: readonly AllocatableGpu[], facts: GpuFacts): (gpu: AllocatableGpu) => boolean {
  if (request.count === 0) return () => true;
  const refuse = (field: string, message: string): never => {
    throw new ProviderError('GPU_CONSTRAINT_UNMET', `resources.gpus.${field}: ${message}`, {
      input: `resources.gpus.${field}`,
      fix: 'ask for what /v1/offer lists under gpuModels, or ask another provider',
    });
  };
  const have = (list: readonly AllocatableGpu[]) => [...new Set(list.map((gpu) => `${nameOf(gpu)} (${gpu.memoryBytes === null ? 'memory unknown' : `${Math.floor(gpu.memoryBytes / 2 ** 20)} MiB`})`))].join(', ') || 'no GPUs';
  const checks: [string, ((gpu: AllocatableGpu) => boolean) | undefined, string][] = [];
  if (request.model !== undefined) {
    const model = request.model.toLowerCase();
    checks.push(['model', (gpu) => nameOf(gpu).toLowerCase().includes(model), `no GPU here matches "${request.model}"`]);
  }
  if (request.migProfile !== undefined) {
    const profile = request.migProfile.toLowerCase();
    checks.push(['migProfile', (gpu) => gpu.profile?.toLowerCase() === profile, `no MIG device here has profile ${request.migProfile}`]);
  }
  const minMemory = minMemoryOf(request);
  if (minMemory !== undefined) {
    const field = request.minMemoryBytes !== undefined && request.minMemoryBytes === minMemory ? 'minMemoryBytes' : 'minMemory';
    checks.push([field, (gpu) => gpu.memoryBytes !== null && gpu.memoryBytes >= minMemory, `no GPU here has ${minMemory} bytes of memory or more`]);
  }
  let candidates = [...units];
  for (const [field, accept, message] of checks) {
    const next = candidates.filter(accept!);
    if (next.length < request.count) refuse(field, `${message}; this provider has ${have(candidates)}${next.length > 0 ? `, ${next.length} of them matching` : ''}`);
    candidates = next;
  }
  if (request.minDriverVersion !== undefined && (facts.driverVersion === null || !versionAtLeast(facts.driverVersion, request.minDriverVersion))) {
    refuse('minDriverVersion', `this provider's NVIDIA driver is ${facts.driverVersion ?? 'unknown'}, below ${request.minDriverVersion}`);
  }
  if (request.minCudaVersion !== undefined && (facts.cudaVersion === null || !versionAtLeast(facts.cudaVersion, request.minCudaVersion))) {
    refuse('minCudaVersion', `this provider's driver supports CUDA ${facts.cudaVersion ?? 'unknown'}, below ${request.minCudaVersion}`);
  }
  const accepted = new Set(candidates.map((gpu) => gpu.uuid));
  return (gpu) => accepted.has(gpu.uuid);
}
