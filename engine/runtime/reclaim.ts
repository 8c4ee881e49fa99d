// Reclaiming what dead processes left in the store (engine/store/owners.ts finds it): their
// runc containers, the mounts under their staging directories, the directories and files.
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
    const mounts = (await mountPoints()).filter((m) => entries.some((d) => isUnder(m, d)));
    for (const m of mounts.sort((a, b) => b.length - a.length)) await unmountPath(m);
    for (const p of entries) await fs.rm(p, { recursive: true, force: true });
  }
  for (const file of records) await fs.rm(file, { force: true });
  return entries;
}
