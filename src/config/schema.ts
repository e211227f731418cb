import { z } from 'zod';
import { parseBytes } from '../util/bytes';
import { LOG_LEVELS } from '../log';
import { ethAddressSchema } from '../util/eth-address';

/**
 * The single source of truth for everything an operator tunes. Every object is strict: an unknown
 * key is an error (a typo must not silently fall back to a default). Every key is documented in
 * config/provider.example.yaml; a unit test keeps the two in step.
 */

/** A byte size: a number of bytes, or a string such as `512MiB`, `2GiB`, `10G`. */
export const byteSize = z.union([
  z.number().int().nonnegative(),
  z.string().transform((text, ctx) => {
    const bytes = parseBytes(text);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as 512MiB, 2GiB or a byte count, got "${text}"` });
      return z.NEVER;
    }
    return bytes;
  }),
]);

/** A byte size that must not be zero (a zero log size or tmpfs makes every lease fail to start). */
export const positiveByteSize = byteSize.refine((bytes) => bytes > 0, { message: 'expected a size above zero' });

/** A token amount in base units (wei): integer as a string or a safe integer, kept as a decimal string. */
export const tokenAmount = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const text = String(value).trim();
  if (!/^\d+$/.test(text) || (typeof value === 'number' && !Number.isSafeInteger(value))) {
    ctx.addIssue({ code: 'custom', message: `expected a whole number of token base units (e.g. "1000000000"), got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return text.replace(/^0+(?=\d)/, '');
});

const port = z.number().int().min(1).max(65535);
const ethAddress = ethAddressSchema;
const cidr = z.union([z.cidrv4(), z.cidrv6()], { error: 'expected a CIDR range such as 203.0.113.0/24 or 2001:db8::/32' });

export const logSchema = z
  .strictObject({
    level: z.enum(LOG_LEVELS).default('info'),
    format: z.enum(['auto', 'pretty', 'json']).default('auto'),
  })
  .prefault({});

export const dockerSchema = z
  .strictObject({
    socketPath: z.string().min(1).default('/var/run/docker.sock'),
    /** Per-call timeout for engine API requests that are not long-running (info, inspect). */
    requestTimeoutMs: z.number().int().positive().default(10_000),
  })
  .prefault({});

export const networkSchema = z.strictObject({
  /** JSON-RPC endpoint of the chain; may carry an API key, so it is treated as a secret. */
  rpcUrl: z.url(),
  /** Optional WebSocket endpoint for event subscriptions; polling is used without it. */
  wsUrl: z.url().optional(),
  chainId: z.number().int().positive(),
  marketplaceAddress: ethAddress,
  tokenAddress: ethAddress.optional(),
  /** Blocks a transaction or event must be buried under before it counts. */
  confirmations: z.number().int().min(0).max(256).default(2),
  pollIntervalMs: z.number().int().min(100).default(2_000),
  /** First block to read events from when the store has no cursor yet. */
  startBlock: z.number().int().nonnegative().default(0),
});

export const devnetSchema = z
  .strictObject({
    host: z.string().default('127.0.0.1'),
    port: port.default(8545),
    chainId: z.number().int().positive().default(31337),
    /** Seconds between devnet blocks; 0 mines on every transaction. */
    blockTimeSeconds: z.number().int().min(0).default(1),
    /**
     * Seconds a unilateral claim waits for disputes on the devnet's marketplace (a real network
     * chooses its own at deployment). Short, so leases settle and refund within a minute; changing
     * it redeploys the devnet's contracts.
     */
    challengeWindowSeconds: z.number().int().min(1).max(30 * 86_400).default(60),
  })
  .prefault({});

export const keystoreSchema = z
  .strictObject({
    /** Encrypted JSON keystore (ethers); default `<dataDir>/keystore.json`. */
    path: z.string().min(1).optional(),
    /** File whose first line is the keystore password. */
    passwordFile: z.string().min(1).optional(),
    /** Name of the environment variable holding the password (the variable, not the password). */
    passwordEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'expected an environment variable name').default('PROVIDER_KEYSTORE_PASSWORD'),
  })
  .prefault({});

export const apiSchema = z
  .strictObject({
    host: z.string().min(1).default('0.0.0.0'),
    port: port.default(8420),
    /** URL tenants reach the API at, advertised on-chain; default http://<host>:<port>. */
    publicUrl: z.url().optional(),
    maxBodyBytes: positiveByteSize.default(1024 * 1024),
    /** How long a tenant request signature stays acceptable. */
    maxSignatureAgeSeconds: z.number().int().positive().default(300),
  })
  .prefault({});

const ratePerGpuModel = z.record(z.string().min(1), tokenAmount);

export const pricingSchema = z
  .strictObject({
    /** Per second of lease, whatever it uses. */
    perLeaseSecond: tokenAmount.default('0'),
    /** Per CPU-second used (1 core busy for 1 s). */
    perCpuSecond: tokenAmount.default('1000000000'),
    /** Per GiB of memory reserved, per second. */
    perGiBMemorySecond: tokenAmount.default('100000000'),
    /** Per GPU-second allocated, for models not listed in perGpuSecondByModel. */
    perGpuSecond: tokenAmount.default('100000000000'),
    /** Per GPU-second by model name as nvidia-smi reports it, e.g. "NVIDIA H100 80GB HBM3". */
    perGpuSecondByModel: ratePerGpuModel.default({}),
    /** Per GiB sent out of the lease. */
    perGiBEgress: tokenAmount.default('10000000000000'),
    /** The least any lease is charged. */
    minimumPerLease: tokenAmount.default('0'),
    /** How long a signed quote stays valid. */
    quoteTtlSeconds: z.number().int().min(10).max(86_400).default(300),
  })
  .prefault({});

export const reserveSchema = z
  .strictObject({
    /** CPU kept for the host and the daemon, in thousandths of a core. */
    cpuMillis: z.number().int().nonnegative().default(1000),
    memoryBytes: byteSize.default(2 * 2 ** 30),
    diskBytes: byteSize.default(10 * 2 ** 30),
  })
  .prefault({});

export const gpuSchema = z
  .strictObject({
    /** `all`, `none`, or a list of GPU UUIDs or indices to offer. */
    offer: z.union([z.enum(['all', 'none']), z.array(z.union([z.string().min(1), z.number().int().nonnegative()])).min(1)]).default('all'),
    /** How GPUs reach containers: the NVIDIA runtime hook (`runtime`) or CDI device names (`cdi`). */
    mode: z.enum(['runtime', 'cdi']).default('runtime'),
    /** nvidia-smi to run; found on PATH when unset. Env PROVIDER_NVIDIA_SMI sets it too. */
    nvidiaSmiPath: z.string().min(1).optional(),
    nvidiaSmiTimeoutMs: z.number().int().positive().default(15_000),
    /** NVIDIA_DRIVER_CAPABILITIES given to GPU containers. */
    driverCapabilities: z.string().min(1).default('compute,utility'),
  })
  .prefault({});

const patternList = z.array(z.string().min(1));

export const admissionSchema = z
  .strictObject({
    images: z
      .strictObject({
        /** Glob patterns (`*` within a path segment, `**` across) an image must match; empty: any. */
        allow: patternList.default([]),
        /** Glob patterns refused even when allowed. */
        deny: patternList.default([]),
      })
      .prefault({}),
    tenants: z
      .strictObject({
        /** Tenant addresses allowed; empty: any. */
        allow: z.array(ethAddress).default([]),
        deny: z.array(ethAddress).default([]),
      })
      .prefault({}),
    maxLeaseDurationSeconds: z.number().int().positive().default(7 * 86_400),
    /** GPU models leases may ask for by name; empty: any that is offered. */
    gpuModels: patternList.default([]),
    /** Per-lease ceilings, whatever is free. */
    maxCpuMillisPerLease: z.number().int().positive().optional(),
    maxMemoryBytesPerLease: positiveByteSize.optional(),
    /**
     * The most of the free capacity (free now plus what its own quotes hold, each of CPU, memory
     * and GPUs) one tenant may hold in outstanding quotes once it has one: quotes cost nothing
     * until a lease is opened, so a stranger must not empty the machine with them.
     */
    maxQuoteShare: z.number().gt(0).max(1).default(0.5),
    /** How long a tenant's token balance and allowance, read at quote time, are trusted. */
    fundingCacheSeconds: z.number().int().min(0).max(600).default(10),
    /** The longest a quote waits for the image's registry to say what the image is. */
    imageResolveTimeoutSeconds: z.number().int().positive().max(120).default(15),
    /** Token buckets on quote requests: per tenant key and per source address (an IPv6 /64). */
    rateLimit: z
      .strictObject({
        perTenant: rateBucket({ perMinute: 30, burst: 10 }),
        perAddress: rateBucket({ perMinute: 60, burst: 20 }),
        /** Keys tracked per bucket set; past it the least recently seen is forgotten (memory stays bounded). */
        maxTrackedKeys: z.number().int().positive().max(1_000_000).default(10_000),
      })
      .prefault({}),
  })
  .prefault({});

function rateBucket(defaults: { perMinute: number; burst: number }) {
  return z
    .strictObject({
      /** Requests refilled per minute. */
      perMinute: z.number().positive().default(defaults.perMinute),
      /** Requests that may come at once. */
      burst: z.number().int().positive().default(defaults.burst),
    })
    .prefault({});
}

export const runtimeSchema = z
  .strictObject({
    /** Host ports that lease ports are published on. */
    portRange: z
      .strictObject({ from: port.default(30000), to: port.default(32767) })
      .prefault({})
      .refine((range) => range.from <= range.to, { message: 'expected portRange.from <= portRange.to' }),
    egress: z
      .strictObject({
        /** Leases may reach the public internet. */
        public: z.boolean().default(true),
        /** Private ranges opened to leases despite the default block (e.g. a shared dataset server). */
        allowCidrs: z.array(cidr).default([]),
        /**
         * DNS servers leases resolve through; port 53 to them stays open even inside blocked ranges.
         * Empty: the host's own resolvers (/etc/resolv.conf, or systemd-resolved's upstreams).
         */
        dnsServers: z.array(z.string().regex(/^[0-9a-fA-F:.]+$/, 'expected an IP address such as 1.1.1.1')).default([]),
        /**
         * The egress a quote commits each lease to, in bytes per second (the allocation's
         * egressBytesPerSecond): usage is billed up to it and never beyond, since a record above
         * the allocation is disputable. Not a shaper. Leases with `egress: none` commit to 0.
         */
        bytesPerSecond: z.number().int().min(0).default(125_000_000),
      })
      .prefault({}),
    /**
     * The OCI runtime leases run under. auto: gVisor (runsc) for leases without GPUs when Docker
     * has a runtime named runsc, runc otherwise; runsc: always gVisor (GPU leases are refused at
     * quote); runc: never gVisor. provisioners/install.sh --with-gvisor installs and registers it.
     */
    sandbox: z.enum(['auto', 'runsc', 'runc']).default('auto'),
    pidsLimit: z.number().int().min(16).default(1024),
    nofileLimit: z.number().int().min(64).default(65_536),
    stopTimeoutSeconds: z.number().int().min(0).max(600).default(10),
    readOnlyRootfs: z.boolean().default(false),
    /** Size of the tmpfs scratch mounted on /tmp (and /run) when readOnlyRootfs is on; counts against the lease's memory. */
    tmpfsBytes: positiveByteSize.default(256 * 2 ** 20),
    /** /dev/shm size for leases whose manifest does not say. */
    defaultShmBytes: positiveByteSize.default(64 * 2 ** 20),
    /** How often each lease's writable layer is measured against its diskBytes. */
    diskCheckIntervalSeconds: z.number().int().min(1).max(3600).default(30),
    logMaxSize: positiveByteSize.default(10 * 2 ** 20),
    logMaxFiles: z.number().int().min(1).max(100).default(3),
    network: z
      .strictObject({
        /**
         * The range every lease network's subnet is cut from, passed to Docker explicitly: lease
         * networks never use Docker's default address pools. A subnet overlapping any Docker network
         * or host route is skipped.
         */
        subnetPool: z.cidrv4({ error: 'expected an IPv4 range such as 10.77.0.0/16' }).default('10.77.0.0/16'),
        /** Size of each lease's subnet: a /28 has 14 addresses, and a lease uses two (gateway, container). */
        subnetPrefix: z.number().int().min(16).max(30).default(28),
        /**
         * Where each daemon on this host records that it is alive (pid, boot, heartbeat), so daemons
         * sharing the engine can prove that another one is gone before collecting what it left.
         */
        instanceRegistryDir: z.string().min(1).default('/var/lib/provider-instances'),
        /** How long another daemon must have been gone (dead process, no heartbeat) before its lease networks and firewall chains are collected. */
        orphanGraceSeconds: z.number().int().min(60).max(30 * 86_400).default(900),
      })
      .prefault({})
      .refine((n) => n.subnetPrefix >= Number(n.subnetPool.split('/')[1]), { message: 'expected subnetPrefix at least the prefix of subnetPool' }),
    firewall: z
      .strictObject({
        /** How often the lease firewall rules are checked, and restored when another tool flushed them. */
        checkIntervalSeconds: z.number().int().min(1).max(3600).default(10),
      })
      .prefault({}),
    images: z
      .strictObject({
        pullTimeoutSeconds: z.number().int().positive().default(1800),
        maxSizeBytes: positiveByteSize.default(50 * 2 ** 30),
        /** Unused images are removed, least recently used first, above this data-disk use. */
        cleanupAtDiskPercent: z.number().min(1).max(100).default(85),
      })
      .prefault({}),
  })
  .prefault({});

export const meteringSchema = z
  .strictObject({
    sampleIntervalSeconds: z.number().int().min(1).default(15),
    /**
     * With Docker's cgroupfs driver each lease's container runs under a parent cgroup of its own,
     * `/<cgroupParent>/lease-<runtimeId>`, which outlives the container: its CPU is read there, once
     * more after the exit, so a workload that exits between samples is billed all it used.
     */
    cgroupParent: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'a cgroup name: 1-64 characters of [A-Za-z0-9_.-], starting with a letter or digit').default('provider'),
  })
  .prefault({});

export const settlementSchema = z
  .strictObject({
    checkpointIntervalSeconds: z.number().int().min(5).default(300),
    withdrawIntervalSeconds: z.number().int().min(60).default(86_400),
    /** Withdraw as soon as finalised earnings pass this amount. */
    withdrawThreshold: tokenAmount.default('0'),
    /**
     * How long an ended lease's final checkpoint waits for the tenant's countersignature (paid at
     * once by redeem) before the provider claims it unilaterally (paid after the challenge window).
     * Keep it well under the marketplace's challenge window: a claim must land before the window
     * after the lease's end closes.
     */
    countersignGraceSeconds: z.number().int().min(0).max(86_400).default(30),
    /**
     * A lease's latest checkpoint is claimed on-chain once it holds usage neither countersigned nor
     * claimed that is older than this fraction of the marketplace's challenge window, even while
     * the lease runs: a tenant that stops countersigning cannot leave the provider to claim late.
     */
    claimAfterWindowFraction: z.number().gt(0).max(1).default(0.5),
    /**
     * The address every withdrawal pays (the marketplace's payout address), named at registration.
     * Default: the provider key's own address. Keep it a cold address: the provider key is a hot
     * one, and only the payout address itself can move the payout later (`setPayout`).
     */
    payoutAddress: ethAddress.optional(),
  })
  .prefault({});

export const dashboardSchema = z
  .strictObject({
    /** GET /dashboard on the API's port, for this machine only (like `provider status`). */
    enabled: z.boolean().default(true),
    /**
     * Lets other machines on the network open the dashboard (read only) with this password, asked
     * by the browser (HTTP basic auth). Unset: this machine only; reach it from elsewhere through an
     * SSH tunnel (ssh -L 8420:127.0.0.1:8420 <host>). Sent in clear over plain HTTP: a LAN you trust.
     */
    password: z.string().min(12, 'expected at least 12 characters').max(1024).optional(),
  })
  .prefault({});

export const configSchema = z.strictObject({
  /** Where the store, the devnet's state and the keystore live. Default: /var/lib/provider as root, else ~/.local/share/provider. */
  dataDir: z.string().min(1),
  /** Region advertised to tenants, free text such as `eu-west` or `home-nl`. */
  region: z.string().min(1).max(64).default('unspecified'),
  log: logSchema,
  docker: dockerSchema,
  /** The chain to sell on. Leave it out to run on the embedded devnet. */
  network: networkSchema.optional(),
  devnet: devnetSchema,
  keystore: keystoreSchema,
  api: apiSchema,
  pricing: pricingSchema,
  reserve: reserveSchema,
  gpu: gpuSchema,
  admission: admissionSchema,
  runtime: runtimeSchema,
  metering: meteringSchema,
  settlement: settlementSchema,
  dashboard: dashboardSchema,
});

export type ProviderConfig = z.output<typeof configSchema>;
export type ProviderConfigInput = z.input<typeof configSchema>;

/** Key paths whose values are secrets: redacted by `config print` and never logged. */
export const SECRET_CONFIG_PATHS: readonly (readonly string[])[] = [
  ['network', 'rpcUrl'],
  ['network', 'wsUrl'],
  ['dashboard', 'password'],
];
