import { access, constants, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Where CDI specs live when Docker does not say (the CDI specification's defaults). */
export const DEFAULT_CDI_SPEC_DIRS = ['/etc/cdi', '/var/run/cdi'] as const;

/** The file access the Docker probe needs (CDI specs, the NVIDIA hook); tests pass a fake. */
export interface HostFiles {
  list(dir: string): Promise<string[]>;
  read(file: string): Promise<string>;
  isExecutable(file: string): Promise<boolean>;
}

export const nodeHostFiles: HostFiles = {
  list: (dir) => readdir(dir),
  read: (file) => readFile(file, 'utf8'),
  isExecutable: (file) => access(file, constants.X_OK).then(() => true, () => false),
};

// A spec names its device kind once at the top: `kind: nvidia.com/gpu` on its own line (YAML, as
// nvidia-ctk writes it by default) or `"kind": "nvidia.com/gpu"` anywhere (JSON, compact or not).
const NVIDIA_GPU_KIND_YAML = /^kind:\s*["']?nvidia\.com\/gpu["']?\s*$/m;
const NVIDIA_GPU_KIND_JSON = /"kind"\s*:\s*"nvidia\.com\/gpu"/;

/** CDI spec files in `dirs` that declare NVIDIA GPUs. Missing or unreadable dirs and files are skipped. */
export async function findNvidiaCdiSpecs(dirs: readonly string[], files: HostFiles = nodeHostFiles): Promise<string[]> {
  const found: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await files.list(dir);
    } catch {
      continue;
    }
    for (const name of names.filter((n) => /\.(ya?ml|json)$/i.test(n)).sort()) {
      const file = join(dir, name);
      try {
        const spec = await files.read(file);
        if (NVIDIA_GPU_KIND_YAML.test(spec) || NVIDIA_GPU_KIND_JSON.test(spec)) found.push(file);
      } catch {
        // A spec we cannot read is one Docker cannot read either.
      }
    }
  }
  return found;
}
