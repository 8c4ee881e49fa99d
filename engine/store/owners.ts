// Which processes use the store, and the reclaiming of what dead ones left: a worker killed
// in the middle of a step leaves its staging directory in tmp/ (with the step's overlay
// mounted on it and maybe its runc container still running) and temp files beside blobs.
// Every temp entry carries its maker's PROCESS_TAG; owners/<tag>.json says who that is, so
// a worker can remove exactly the entries of processes that are gone, while other live
// workers (same machine or other containers on the same volume) keep theirs.
import { readFileSync, rmSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { PROCESS_TAG } from '../fsutil/atomic.js';
import { unmountPath } from '../runtime/overlay.js';

/** Who made the temp entries tagged with one PROCESS_TAG. */
interface OwnerRecord {
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

async function selfRecord(): Promise<OwnerRecord> {
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

interface RuncContainer {
  id: string;
  bundle: string;
}

async function runcContainers(): Promise<RuncContainer[]> {
  const r = await execa('runc', ['list', '--format', 'json'], { reject: false });
  if (r.exitCode !== 0) return [];
  try {
    return (JSON.parse(String(r.stdout) || '[]') ?? []) as RuncContainer[];
  } catch {
    return [];
  }
}

/** Mount points of this mount namespace, with /proc's octal escapes decoded. */
export async function mountPoints(): Promise<string[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Pids of running `program`s with an argument under one of `dirs`. */
async function processesNamingPaths(program: string, dirs: string[]): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await fs.readdir('/proc').catch(() => [] as string[])) {
    if (!/^[0-9]+$/.test(name)) continue;
    const argv = (await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (path.basename(argv[0] ?? '') !== program) continue;
    if (argv.some((a) => dirs.some((d) => isUnder(a, d)))) pids.push(Number(name));
  }
  return pids;
}

function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir + path.sep);
}

/**
 * Removes what dead processes left in the store: their runc containers (a killed worker's
 * `runc run` outlives it, and the step's process with it), the mounts under their staging
 * directories (deepest first), the directories, their partial blob and index temp files, and
 * their owner records. Returns the paths removed.
 */
export async function reclaimDeadOwners(root: string): Promise<string[]> {
  const self = await selfRecord();
  const verdicts = new Map<string, Promise<boolean>>();
  const dead = (tag: string) => {
    if (!verdicts.has(tag)) verdicts.set(tag, ownerAlive(root, tag, self).then((alive) => !alive));
    return verdicts.get(tag)!;
  };
  const leftovers: string[] = [];
  for (const dir of [path.join(root, 'tmp'), path.join(root, 'blobs', 'sha256'), root]) {
    for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
      const m = TEMP_ENTRY.exec(name);
      if (m && (await dead(m[1]!))) leftovers.push(path.join(dir, name));
    }
  }
  if (leftovers.length > 0) {
    const containers = await runcContainers();
    for (const c of containers.filter((c) => leftovers.some((d) => isUnder(c.bundle, d)))) {
      await execa('runc', ['delete', '--force', c.id], { reject: false });
    }
    // A step's slirp4netns leaves by itself when its worker dies (its exit fd closes); one
    // that did not still holds the namespace under the staging dir.
    for (const pid of await processesNamingPaths('slirp4netns', leftovers)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    const mounts = (await mountPoints()).filter((m) => leftovers.some((d) => isUnder(m, d)));
    for (const m of mounts.sort((a, b) => b.length - a.length)) await unmountPath(m);
    for (const p of leftovers) await fs.rm(p, { recursive: true, force: true });
  }
  for (const name of await fs.readdir(ownersDir(root)).catch(() => [] as string[])) {
    const tag = /^([0-9a-f]{12})\.json$/.exec(name)?.[1];
    if (tag && (await dead(tag))) await fs.rm(path.join(ownersDir(root), name), { force: true });
  }
  return leftovers;
}
