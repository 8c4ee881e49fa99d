// Which processes use the store, and what dead ones left: a worker killed in the middle of a
// step leaves its staging directory in tmp/ (with the step's overlay mounted on it and maybe
// its runc container still running) and temp files beside blobs. Every temp entry carries its
// maker's PROCESS_TAG; owners/<tag>.json says who that is, so a worker can find exactly the
// entries of processes that are gone, while other live workers (same machine or other
// containers on the same volume) keep theirs. engine/runtime/reclaim.ts removes them.
import { readFileSync, rmSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROCESS_TAG } from '../fsutil/atomic.js';

/** Who made the temp entries tagged with one PROCESS_TAG. */
export interface OwnerRecord {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the pid, names one process for the life of a boot. */
  startTime: string;
  bootId: string;
  /** The pid namespace: pids only mean something inside the same one. */
  pidNamespace: string;
  hostname: string;
}

/** How often a live owner touches its record; other machines judge it by that mtime. */
const TOUCH_MS = 30_000;
/** A record on another machine not touched for this long belongs to a dead process. */
export const OWNER_STALE_MS = 3 * 60_000;

/** `<prefix>-<tag>-<random>`: store.makeTempDir, putBlobStream, and (with a dot) tempName. */
const TEMP_ENTRY = /^\.?[a-z][a-z-]*-([0-9a-f]{12})-[0-9a-f]{12}$/;

function ownersDir(root: string): string {
  return path.join(root, 'owners');
}

function startTimeOf(pid: number | 'self'): { startTime: string; zombie: boolean } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { startTime: fields[19] ?? '', zombie: fields[0] === 'Z' || fields[0] === 'X' };
}

/** This process, as its owner record names it. */
export async function selfRecord(): Promise<OwnerRecord> {
  return {
    pid: process.pid,
    startTime: startTimeOf('self')?.startTime ?? '',
    bootId: (await fs.readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim(),
    pidNamespace: await fs.readlink('/proc/self/ns/pid').catch(() => ''),
    hostname: os.hostname(),
  };
}

/** Store root → this process's record in it; a clean exit removes them all. */
const registered = new Map<string, string>();
process.once('exit', () => {
  for (const file of registered.values()) rmSync(file, { force: true });
});

/**
 * Records this process as a user of the store at `root` before it makes any temp entry, and
 * keeps the record fresh until the process exits (a clean exit removes it).
 */
export async function registerOwner(root: string): Promise<void> {
  if (registered.has(root)) return;
  const file = path.join(ownersDir(root), `${PROCESS_TAG}.json`);
  registered.set(root, file);
  const record = JSON.stringify(await selfRecord());
  await fs.mkdir(ownersDir(root), { recursive: true });
  await fs.writeFile(file, record);
  const touch = setInterval(() => {
    const now = new Date();
    // Rewritten when missing: a worker elsewhere took this process for dead after a long stall.
    fs.utimes(file, now, now).catch(() => fs.writeFile(file, record).catch(() => undefined));
  }, TOUCH_MS);
  touch.unref();
}

/** True while the process that made entries tagged `tag` may still use them. */
export async function ownerAlive(root: string, tag: string, self?: OwnerRecord): Promise<boolean> {
  if (tag === PROCESS_TAG) return true;
  const file = path.join(ownersDir(root), `${tag}.json`);
  let record: OwnerRecord;
  let mtimeMs: number;
  try {
    [record, mtimeMs] = await Promise.all([fs.readFile(file, 'utf8').then((t) => JSON.parse(t) as OwnerRecord), fs.stat(file).then((s) => s.mtimeMs)]);
  } catch {
    return false; // no record (an exited process, or a torn one): nobody can be using its entries
  }
  const me = self ?? (await selfRecord());
  if (record.bootId && record.bootId === me.bootId && record.pidNamespace && record.pidNamespace === me.pidNamespace) {
    const now = startTimeOf(record.pid);
    return !!now && !now.zombie && now.startTime === record.startTime;
  }
  return Date.now() - mtimeMs < OWNER_STALE_MS;
}

/** What dead processes left: their temp entries (staging dirs, partial files) and owner records. */
export interface DeadLeftovers {
  entries: string[];
  records: string[];
}

/** Finds the temp entries and owner records of processes that are gone; removes nothing. */
export async function findDeadLeftovers(root: string): Promise<DeadLeftovers> {
  const self = await selfRecord();
  const verdicts = new Map<string, Promise<boolean>>();
  const dead = (tag: string) => {
    if (!verdicts.has(tag))
      verdicts.set(
        tag,
        ownerAlive(root, tag, self).then((alive) => !alive),
      );
    return verdicts.get(tag)!;
  };
  const entries: string[] = [];
  for (const dir of [path.join(root, 'tmp'), path.join(root, 'blobs', 'sha256'), root]) {
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      const m = TEMP_ENTRY.exec(name);
      if (m && (await dead(m[1]!))) entries.push(path.join(dir, name));
    }
  }
  const records: string[] = [];
  for (const name of await fs.readdir(ownersDir(root)).catch(() => [] as string[])) {
    const tag = /^([0-9a-f]{12})\.json$/.exec(name)?.[1];
    if (tag && (await dead(tag))) records.push(path.join(ownersDir(root), name));
  }
  return { entries, records };
}
