// Reclaiming what dead processes left in the store (engine/store/owners.ts finds it): their
// runc containers and slirp4netns processes, the mounts under their staging directories (the
// step's network namespace file among them), the directories and files.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { findDeadLeftovers } from '../store/owners.js';
import { unmountPath } from './overlay.js';

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
async function mountPoints(): Promise<string[]> {
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
 * their owner records (last: a record goes only once its entries are gone). Returns the paths
 * removed.
 */
export async function reclaimDeadOwners(root: string): Promise<string[]> {
  const { entries, records } = await findDeadLeftovers(root);
  if (entries.length > 0) {
    const containers = await runcContainers();
    for (const c of containers.filter((c) => entries.some((d) => isUnder(c.bundle, d)))) {
      await execa('runc', ['delete', '--force', c.id], { reject: false });
    }
    // A step's slirp4netns leaves by itself when its worker dies (its exit fd closes); one
    // that did not still holds the namespace under the staging dir.
    for (const pid of await processesNamingPaths('slirp4netns', entries)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    const mounts = (await mountPoints()).filter((m) => entries.some((d) => isUnder(m, d)));
    for (const m of mounts.sort((a, b) => b.length - a.length)) await unmountPath(m);
    for (const p of entries) await fs.rm(p, { recursive: true, force: true });
  }
  for (const file of records) await fs.rm(file, { force: true });
  return entries;
}
