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

/**
 * The API's certificate. By default the daemon makes its own (EC P-256, self-signed) in
 * <dataDir>/tls and renews it `renewBeforeDays` before it expires; tenants trust it through the
 * SHA-256 pin in the provider's on-chain metadata, not through a CA. certFile and keyFile bring a
 * CA-issued one instead, pinned the same way.
 */
export const apiTlsSchema = z
  .strictObject({
    /** False serves the public port in plain HTTP: tenants then reach it only on loopback (development). */
    enabled: z.boolean().default(true),
    /** PEM certificate (chain allowed: the first is the server's); needs keyFile. */
    certFile: z.string().min(1).optional(),
    /** PEM private key (unencrypted) of certFile. */
    keyFile: z.string().min(1).optional(),
    /** Lifetime of a self-made certificate. */
    validityDays: z.number().int().min(2).max(825).default(90),
    /** Renew a self-made certificate this long before it expires; warn about an operator's one. */
    renewBeforeDays: z.number().int().min(1).default(30),
  })
  .refine((tls) => (tls.certFile === undefined) === (tls.keyFile === undefined), { path: ['keyFile'], message: 'certFile and keyFile go together' })
  .refine((tls) => tls.renewBeforeDays < tls.validityDays, { path: ['renewBeforeDays'], message: 'must be less than validityDays' })
  .prefault({});

export const apiSchema = z
  .strictObject({
    host: z.string().min(1).default('0.0.0.0'),
    port: port.default(8420),
    /** URL tenants reach the API at, advertised on-chain; default https://<host>:<port> (http:// with tls.enabled false). */
    publicUrl: z.url().optional(),
    maxBodyBytes: positiveByteSize.default(1024 * 1024),
    /** How long a tenant request signature stays acceptable. */
    maxSignatureAgeSeconds: z.number().int().positive().default(300),
    /**
     * Plain HTTP for the operator's commands, on loopback only (127.0.0.1); default api.port + 1.
     * The public port speaks TLS, and the CLI on this machine has no pin to check.
     */
    operatorPort: port.optional(),
    tls: apiTlsSchema,
  })
  .refine((api) => api.operatorPort === undefined || api.operatorPort !== api.port, { path: ['operatorPort'], message: 'must differ from api.port' })
  .refine((api) => !api.tls.enabled || api.publicUrl === undefined || api.publicUrl.startsWith('https:'), {
    path: ['publicUrl'],
    message: 'must be an https:// URL while api.tls.enabled is true (tenants pin the certificate)',
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

const xidList = z.array(z.number().int().nonnegative());

/** When a GPU is unhealthy, and what follows: `withdraw` takes it off sale; `fatal` also ends the leases on it (gpu-failed). */
export const gpuHealthSchema = z
  .strictObject({
    /** Seconds between reads of `nvidia-smi -q -x` (and the kernel log for Xid errors). */
    intervalSeconds: z.number().int().positive().default(30),
    /** Seconds a withdrawn GPU must read healthy before it is offered again. */
    recoverAfterSeconds: z.number().int().nonnegative().default(300),
    /**
     * The program whose output holds the kernel's `NVRM: Xid` lines (dmesg needs CAP_SYSLOG or
     * kernel.dmesg_restrict=0); null: Xid errors are not read.
     */
    dmesgPath: z.string().min(1).nullable().default('dmesg'),
    xid: z
      .strictObject({
        /** Xids that mean the GPU or its memory failed under the lease: 48 DBE ECC, 61/62 microcontroller, 74 NVLink, 79 fallen off the bus, 92 high SBE rate, 94/95 contained/uncontained ECC, 119/120 GSP. */
        fatal: xidList.default([48, 61, 62, 74, 79, 92, 94, 95, 119, 120]),
        /** Xids a tenant's own program causes (13 graphics exception, 31 MMU fault, 43 stopped by the app, 45 preemptive cleanup, 68 video exception): logged, the GPU stays on sale. Any Xid in neither list withdraws the GPU. */
        ignore: xidList.default([13, 31, 43, 45, 68]),
      })
      .prefault({}),
    /** Uncorrectable volatile ECC errors (a rise since the last read). */
    eccUncorrectable: z.enum(['fatal', 'withdraw']).default('fatal'),
    /** Pages waiting for retirement, rows waiting for remapping or a remapping failure: the GPU needs a reset. */
    pendingRetirement: z.enum(['fatal', 'withdraw']).default('withdraw'),
    /** Clock event (throttle) reasons that withdraw the GPU while active, by nvidia-smi's name less its prefix. */
    throttleReasons: z.array(z.string().min(1)).default(['hw_slowdown', 'hw_thermal_slowdown', 'hw_power_brake_slowdown']),
    /** At or above this GPU temperature the GPU is withdrawn. */
    maxTemperatureCelsius: z.number().positive().default(90),
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
    health: gpuHealthSchema,
    /** Hours between the daemon's throwaway-container GPU passthrough checks (also run at start and after Docker or driver events); 0: only those. */
    passthroughCheckIntervalHours: z.number().nonnegative().default(6),
    /** The image the daemon's passthrough check runs `nvidia-smi -L` in (the NVIDIA hook mounts nvidia-smi into it); it must be on the host: the check never pulls. */
    passthroughCheckImage: z.string().min(1).default('debian:bookworm-slim'),
    /** What each GPU lease did with its GPUs, read at the meter's sample points (informational: billing is allocated GPU-seconds). */
    utilization: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Bound on one `nvidia-smi --query-gpu` run; past it the sample is stored without GPU readings. */
        timeoutMs: z.number().int().positive().default(5_000),
        /** A reading younger than this answers every lease that samples meanwhile: one run for all leases. */
        maxAgeSeconds: z.number().int().min(1).default(5),
      })
      .prefault({}),
    /** `provider gpu-bench`: a short CUDA workload per offered GPU, signed and published with the offer. */
    benchmark: z
      .strictObject({
        /** Built from provisioners/gpu-bench (see its README); must hold /usr/local/bin/gpu-bench. */
        image: z.string().min(1).default('provider-gpu-bench:1'),
        /** Run it for every idle offered GPU when the daemon starts (skipped on GPUs a lease holds). */
        atStart: z.boolean().default(false),
        /** Bound on one GPU's run, container start to exit. */
        timeoutSeconds: z.number().int().min(5).max(600).default(60),
        /** Memory limit of the benchmark container (host memory; device memory is the GPU's). */
        memoryBytes: byteSize.refine((bytes) => bytes >= 64 * 2 ** 20, { message: 'expected at least 64 MiB' }).default(2 * 2 ** 30),
      })
      .prefault({}),
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

export const reachabilitySchema = z
  .strictObject({
    /**
     * How tenants reach the API, decided at start. auto: a public address on an interface, else a
     * port mapping on the home router (UPnP-IGD, NAT-PMP), else a global IPv6 address, else the
     * relay below; off: the listen address (or api.publicUrl) as it is. A named mode uses that path
     * only. api.publicUrl, when set, is used as it is whatever the mode (the relay still verifies it).
     * On the embedded devnet auto means off: its tenants are local.
     */
    mode: z.enum(['auto', 'public', 'upnp', 'ipv6', 'relay', 'off']).default('auto'),
    upnp: z
      .strictObject({
        /** How long to look for a UPnP-IGD or NAT-PMP gateway on the LAN before the next path. */
        discoveryTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
        /** Lease time asked of the router; the mapping is renewed at half of it and removed on stop. */
        ttlSeconds: z.number().int().min(60).max(86_400).default(3_600),
      })
      .prefault({}),
    /**
     * An OpenSSH server that carries a reverse tunnel (`ssh -R`) to the API port: raw TCP, so TLS is
     * end to end and the relay sees only ciphertext. Its sshd needs `GatewayPorts clientspecified`
     * (or yes) and the public key of keyFile in the user's authorized_keys.
     */
    relay: z
      .strictObject({
        host: z.string().min(1),
        port: port.default(22),
        user: z.string().min(1),
        /** Private key (OpenSSH or PEM format, unencrypted) the daemon logs in with. */
        keyFile: z.string().min(1),
        /** The relay's host key as in known_hosts (`ssh-ed25519 AAAA...`) or its `SHA256:...` fingerprint: any other key is refused. */
        knownHostKey: z.string().min(1),
        /** Port opened on the relay for tenants. */
        remotePort: port,
        /** Host name or address tenants use for the relay; default: host. */
        publicHost: z.string().min(1).optional(),
        connectTimeoutMs: z.number().int().min(500).max(120_000).default(15_000),
        /** Longest wait between reconnections once the tunnel drops (backoff doubles up to it). */
        maxReconnectDelayMs: z.number().int().min(1_000).max(600_000).default(60_000),
      })
      .optional(),
  })
  .prefault({});

/** What a lease's tenant reaches through the API port: shells, the lease's ports, the tokens that open them. */
export const accessSchema = z
  .strictObject({
    exec: z
      .strictObject({
        /** Shells open at once into one lease; each is a process in the lease's container. */
        maxSessionsPerLease: z.number().int().min(0).max(64).default(4),
        /** A session with no input or output for this long is closed (the process is killed with its container's exec). */
        idleTimeoutSeconds: z.number().int().min(10).max(86_400).default(3_600),
      })
      .prefault({}),
    tokens: z
      .strictObject({
        /** Longest life a minted port token may ask. */
        maxTtlSeconds: z.number().int().min(60).max(30 * 86_400).default(7 * 86_400),
        /** Tokens alive (not expired, not revoked) per lease. */
        maxPerLease: z.number().int().min(1).max(1_000).default(32),
      })
      .prefault({}),
    proxy: z
      .strictObject({
        /** How long a connection to the lease's port may take. */
        connectTimeoutMs: z.number().int().min(100).max(60_000).default(5_000),
        /** How long the lease's service may take to answer with its headers. */
        responseTimeoutMs: z.number().int().min(1_000).max(600_000).default(60_000),
        /** A proxied response, websocket or tunnel idle this long is cut. */
        idleTimeoutMs: z.number().int().min(1_000).max(86_400_000).default(600_000),
        /** Largest request body forwarded to a lease's port (signed requests hash it whole). */
        maxRequestBodyBytes: positiveByteSize.default(16 * 1024 * 1024),
        /** Tunnels and proxied websockets open at once into one lease. */
        maxConnectionsPerLease: z.number().int().min(1).max(10_000).default(64),
      })
      .prefault({}),
  })
  .prefault({});

export const logArchiveSchema = z
  .strictObject({
    /** Keep a lease's logs (gzip, in the data dir) when its container is removed after settlement. */
    enabled: z.boolean().default(true),
    /** Most all archives together may take; the oldest go first, but never one still in its keep period. */
    maxTotalBytes: positiveByteSize.default(2 ** 30),
    /** Archives older than this go, once past their keep period. */
    maxAgeDays: z.number().min(0).max(3650).default(30),
    /**
     * Seconds an archive is kept beyond the marketplace's challenge window after the lease settled,
     * whatever the bounds above: the tenant's evidence for a dispute must not vanish while one can be filed.
     */
    retentionSeconds: z.number().int().min(0).max(366 * 86_400).default(7 * 86_400),
  })
  .prefault({});

export const dashboardSchema = z
  .strictObject({
    /** GET /dashboard for this machine only (like `provider status`): on the operator port, plain HTTP on loopback. */
    enabled: z.boolean().default(true),
    /**
     * Lets other machines on the network open the dashboard (read only) on the API's TLS port with
     * this password, asked by the browser (HTTP basic auth). Unset: this machine only; reach it from
     * elsewhere through an SSH tunnel to the operator port (ssh -L 8421:127.0.0.1:8421 <host>).
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
  reachability: reachabilitySchema,
  pricing: pricingSchema,
  reserve: reserveSchema,
  gpu: gpuSchema,
  admission: admissionSchema,
  runtime: runtimeSchema,
  metering: meteringSchema,
  settlement: settlementSchema,
  access: accessSchema,
  logArchive: logArchiveSchema,
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
