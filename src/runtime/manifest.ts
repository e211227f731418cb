import { z } from 'zod';
import { ProviderError } from '../errors';
import { parseBytes } from '../util/bytes';

/**
 * What a tenant asks to run (DESIGN §3.3). Every object is strict: a key that is not here
 * (`privileged`, `volumes`, `networkMode`, `devices`, `capAdd`, `user`...) is refused, so a
 * manifest can only ever express what the provider is willing to give.
 */

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/**
 * A Docker image reference: `[registry[:port]/]path[:tag][@sha256:digest]`. Upper case, spaces,
 * `..` and shell metacharacters never reach the engine.
 */
/** A dotted version number, as nvidia-smi prints the driver and CUDA versions. */
const VERSION = /^\d{1,4}(\.\d{1,4}){0,3}$/;

const IMAGE_REF =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * Variables the runtime owns: NVIDIA_* would let a tenant widen its GPU access (e.g.
 * NVIDIA_VISIBLE_DEVICES=all under a default nvidia runtime), so they are set by the provider only.
 */
const RESERVED_ENV = /^NVIDIA_/;
// eslint-disable-next-line no-control-regex
const NO_NUL = /^[^\u0000]*$/;

const argString = z.string().max(4096).regex(NO_NUL, 'must not contain NUL characters');

export const portSchema = z.strictObject({
  containerPort: z.number().int().min(1).max(65535),
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
});

export const registryAuthSchema = z.strictObject({
  username: z.string().min(1).max(256),
  password: z.string().min(1).max(8192),
  /** Registry host the credentials are for; defaults to the image's registry. */
  serverAddress: z.string().min(1).max(256).optional(),
});

export const resourcesSchema = z
  .strictObject({
    /** Thousandths of a core; 1000 = one full core. */
    cpuMillis: z.number().int().min(10).max(1024 * 1000),
    /** Hard memory limit; there is no swap. Docker refuses less than 6 MiB. */
    memoryBytes: z.number().int().min(8 * MiB).max(16 * 2 ** 40),
    gpus: z
      .strictObject({
        count: z.number().int().min(0).max(16),
        /** A GPU model as nvidia-smi names it; any when left out. */
        model: z.string().min(1).max(128).optional(),
        /** Each GPU (or MIG device) has at least this much memory, in bytes... */
        minMemoryBytes: z.number().int().positive().optional(),
        /** ...or as a size with a unit (`40GiB`, `80 GB`). */
        minMemory: z
          .string()
          .max(32)
          .refine((text) => parseBytes(text) !== undefined, 'expected a size such as 40GiB')
          .optional(),
        /** The driver supports at least this CUDA version (`12.2`). */
        minCudaVersion: z.string().regex(VERSION, 'expected a version such as 12.2').optional(),
        /** The NVIDIA driver is at least this version (`535.129.03`). */
        minDriverVersion: z.string().regex(VERSION, 'expected a version such as 535.129.03').optional(),
        /** A MIG device of this profile (`3g.20gb`) rather than a whole GPU. */
        migProfile: z.string().min(1).max(32).optional(),
      })
      .default({ count: 0 }),
    /** /dev/shm size; the provider default when left out. */
    shmBytes: z.number().int().min(MiB).max(64 * GiB).optional(),
    /** Most the container's writable layer may grow to; the lease is stopped past it. */
    diskBytes: z.number().int().min(MiB).max(16 * 2 ** 40).optional(),
  })
  .refine((r) => r.shmBytes === undefined || r.shmBytes <= r.memoryBytes, {
    message: 'shmBytes must not exceed memoryBytes (shared memory is charged to the memory limit)',
    path: ['shmBytes'],
  });

export const manifestSchema = z.strictObject({
  image: z.string().min(1).max(512).regex(IMAGE_REF, 'expected an image reference such as registry.example.com/team/app:1.2 or ubuntu@sha256:<digest>'),
  /** Replaces the image's ENTRYPOINT. */
  command: z.array(argString).min(1).max(256).optional(),
  /** Replaces the image's CMD. */
  args: z.array(argString).max(1024).optional(),
  env: z
    .record(
      z
        .string()
        .max(256)
        .regex(ENV_NAME, 'expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)')
        .refine((name) => !RESERVED_ENV.test(name), 'NVIDIA_* variables are set by the provider'),
      z.string().max(32 * 1024).regex(NO_NUL, 'must not contain NUL characters'),
    )
    .refine((env) => Object.keys(env).length <= 256, 'at most 256 environment variables')
    .refine(
      (env) => Object.entries(env).reduce((sum, [k, v]) => sum + k.length + v.length + 2, 0) <= 256 * 1024,
      'environment larger than 256 KiB',
    )
    .optional(),
  ports: z
    .array(portSchema)
    .max(16)
    .refine(
      (ports) => new Set(ports.map((p) => `${p.containerPort}/${p.protocol}`)).size === ports.length,
      'each containerPort/protocol may appear once',
    )
    .optional(),
  resources: resourcesSchema,
  maxDurationSeconds: z.number().int().min(1).max(366 * 86_400),
  /** `none` cuts the lease off from the internet too (it can still serve its published ports). */
  egress: z.enum(['public', 'none']).optional(),
  /** Credentials for a private registry: held in memory for the pull, never stored nor logged. */
  registryAuth: registryAuthSchema.optional(),
});

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;
export type ManifestPort = z.output<typeof portSchema>;
export type RegistryAuth = z.output<typeof registryAuthSchema>;

/**
 * Validates a manifest; a refusal names the field. The error's `input` is the list of problems,
 * never the manifest itself (it may carry registry credentials).
 */
export function parseManifest(input: unknown): Manifest {
  const result = manifestSchema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || '(manifest)',
    message: issue.code === 'unrecognized_keys' ? `not allowed: ${issue.keys.join(', ')}` : issue.message,
  }));
  const first = problems[0];
  throw new ProviderError('MANIFEST_INVALID', `manifest refused: ${first ? `${first.path}: ${first.message}` : 'invalid'}`, {
    input: problems,
  });
}
