import { mkdir, readFile, readdir, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { describeError } from '../errors';
import type { Logger } from '../log';
import type { Clock } from '../util/clock';
import { assertInstanceId } from './names';

/**
 * What a daemon instance writes about itself in the host's instance registry: the process that
 * runs it, named so that another process can tell for certain whether it still runs, and when it
 * last said so.
 */
export const instanceRecordSchema = z.object({
  instanceId: z.string(),
  pid: z.number().int().positive(),
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot): with the pid, one process of one boot. */
  processStart: z.string(),
  /** /proc/self/ns/pid: a pid means nothing to a process in another pid namespace. */
  pidNamespace: z.string(),
  /** /proc/sys/kernel/random/boot_id: no process outlives a reboot. */
  bootId: z.string(),
  /** Milliseconds since the epoch; rewritten every heartbeat while the instance runs. */
  heartbeatAt: z.number(),
  dataDir: z.string(),
});
export type InstanceRecord = z.infer<typeof instanceRecordSchema>;

/** The facts of the host a verdict is given on. */
export interface HostFacts {
  bootId: string;
  pidNamespace: string;
  /** The start time of a running process, undefined when there is none with that pid. */
  processStart(pid: number): string | undefined;
}

export type OwnerVerdict =
  /** Its process runs. */
  | { state: 'alive' }
  /** Nothing can be proven (no record, another pid namespace): treat as alive. */
  | { state: 'unknown'; why: string }
  /** Its process is gone, for less than the grace period. */
  | { state: 'gone'; since: number }
  /** Its process is gone, and has not written a heartbeat for longer than the grace period. */
  | { state: 'abandoned'; since: number };

/**
 * Whether an instance is provably gone. Its process is dead when its record is from another boot,
 * or when no process of that pid exists with the recorded start time (a reused pid has another).
 * It is abandoned once its last heartbeat is older than `graceMs` as well: a daemon restarting
 * (systemd, an upgrade) writes a new record long before that, and its objects stay its own.
 */
export function judgeOwner(record: InstanceRecord | undefined, host: HostFacts, now: number, graceMs: number): OwnerVerdict {
  if (record === undefined) return { state: 'unknown', why: 'no record in the instance registry' };
  let dead: boolean;
  if (record.bootId !== host.bootId) dead = true;
  else if (record.pidNamespace !== host.pidNamespace) return { state: 'unknown', why: 'its process is in another pid namespace' };
  else dead = host.processStart(record.pid) !== record.processStart;
  if (!dead) return { state: 'alive' };
  return now - record.heartbeatAt >= graceMs ? { state: 'abandoned', since: record.heartbeatAt } : { state: 'gone', since: record.heartbeatAt };
}

/** Field 22 of a /proc/<pid>/stat line; the command name (field 2) may hold spaces and parentheses. */
export function processStartOf(stat: string): string | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).trim().split(/\s+/);
  // Fields from the third on; starttime is the 22nd.
  return fields[19];
}

/**
 * The host's registry of daemon instances (runtime.network.instanceRegistryDir): one JSON record
 * per instance, written at start and on every heartbeat. Other instances on the same engine read
 * it to prove that an instance whose networks and chains they find is gone (see judgeOwner);
 * without a record nothing is proven, and nothing of that instance is touched.
 */
export class InstanceRegistry {
  private self: InstanceRecord | undefined;

  constructor(
    private readonly deps: { dir: string; clock: Clock; log: Logger; procRoot?: string },
  ) {}

  private get proc(): string {
    return this.deps.procRoot ?? '/proc';
  }

  /** Writes this process's record for `instanceId`; a live process already recorded there is reported. */
  async register(instanceId: string, dataDir: string): Promise<void> {
    assertInstanceId(instanceId);
    const previous = await this.read(instanceId);
    const host = await this.hostFacts(previous === undefined ? [process.pid] : [process.pid, previous.pid]);
    const verdict = judgeOwner(previous, host, this.deps.clock.now(), 0);
    if (previous !== undefined && previous.pid !== process.pid && verdict.state === 'alive') {
      this.deps.log.warn({ instanceId, pid: previous.pid, dataDir: previous.dataDir }, 'another live process is registered as this instance: two daemons on one data dir?');
    }
    const processStart = host.processStart(process.pid) ?? '';
    const record = { instanceId, pid: process.pid, processStart, pidNamespace: host.pidNamespace, bootId: host.bootId, heartbeatAt: this.deps.clock.now(), dataDir: resolve(dataDir) };
    await this.write(record);
    // Only a registered instance beats: one whose registry is not writable says so once, at start.
    this.self = record;
  }

  /** Rewrites this instance's record with the time now: it still runs. */
  async heartbeat(): Promise<void> {
    if (this.self === undefined) return;
    this.self = { ...this.self, heartbeatAt: this.deps.clock.now() };
    await this.write(this.self);
  }

  async read(instanceId: string): Promise<InstanceRecord | undefined> {
    const text = await readFile(this.pathOf(instanceId), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      const record = instanceRecordSchema.parse(JSON.parse(text));
      return record.instanceId === instanceId ? record : undefined;
    } catch (err) {
      this.deps.log.warn({ instanceId, err: describeError(err) }, 'unreadable instance record: its owner is treated as alive');
      return undefined;
    }
  }

  /** The verdict on another instance (judgeOwner) from its record and this host. */
  async judge(instanceId: string, graceMs: number): Promise<OwnerVerdict> {
    const record = await this.read(instanceId);
    return judgeOwner(record, await this.hostFacts(record === undefined ? [] : [record.pid]), this.deps.clock.now(), graceMs);
  }

  /** The instances with a record. */
  async ids(): Promise<string[]> {
    const names = await readdir(this.deps.dir).catch(() => [] as string[]);
    return names.filter((n) => /^[a-z0-9]{1,10}\.json$/.test(n)).map((n) => n.slice(0, -'.json'.length));
  }

  /** Removes an abandoned instance's record once nothing of it is left. */
  async forget(instanceId: string): Promise<void> {
    await rm(this.pathOf(instanceId), { force: true });
  }

  private pathOf(instanceId: string): string {
    return join(this.deps.dir, `${assertInstanceId(instanceId)}.json`);
  }

  private async write(record: InstanceRecord): Promise<void> {
    await mkdir(this.deps.dir, { recursive: true, mode: 0o755 });
    const path = this.pathOf(record.instanceId);
    const temporary = `${path}.${process.pid}.tmp`;
    // A reader sees the old record or the new one, never half of one.
    await writeFile(temporary, `${JSON.stringify(record)}\n`, { mode: 0o644 });
    await rename(temporary, path);
  }

  /** This host's boot and pid namespace, and the start times of `pids` (read now). */
  private async hostFacts(pids: readonly number[]): Promise<HostFacts> {
    const bootId = (await readFile(join(this.proc, 'sys/kernel/random/boot_id'), 'utf8')).trim();
    const pidNamespace = await readlink(join(this.proc, 'self/ns/pid'));
    const starts = new Map<number, string | undefined>();
    for (const pid of pids) {
      const stat = await readFile(join(this.proc, String(pid), 'stat'), 'utf8').catch(() => undefined);
      starts.set(pid, stat === undefined ? undefined : processStartOf(stat));
    }
    return { bootId, pidNamespace, processStart: (pid) => starts.get(pid) };
  }
}
