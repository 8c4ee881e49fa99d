// What a schedule remembers between runs: its last successful build, as
// $STRATA_HOME/schedules/<schedule ID>.json. `--when changed` compares a run's inputs with it;
// `strata schedule rm` (and a new schedule of the same ID) removes it.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../fsutil/atomic.js';

/** Schedule IDs name files and workflow IDs: letters, digits, `_ . -`, not starting with `.` or `-`. */
export const SCHEDULE_ID = /^[A-Za-z0-9_][\w.-]*$/;

function statePath(root: string, scheduleId: string): string {
  if (!SCHEDULE_ID.test(scheduleId)) throw new Error(`schedule state: invalid schedule ID ${JSON.stringify(scheduleId)}`);
  return path.join(root, 'schedules', `${scheduleId}.json`);
}

/** The recorded state, or undefined when the schedule has built nothing yet. */
export async function readScheduleState<T>(root: string, scheduleId: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(statePath(root, scheduleId), 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Replaces the state atomically: a reader sees the previous build or this one. */
export async function writeScheduleState(root: string, scheduleId: string, state: unknown): Promise<void> {
  const file = statePath(root, scheduleId);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(state, null, 1));
}

/** Removes the state and the pins. Idempotent. */
export async function removeScheduleState(root: string, scheduleId: string): Promise<void> {
  await fs.rm(statePath(root, scheduleId), { force: true });
  await fs.rm(pinsPath(root, scheduleId), { force: true });
}

/**
 * Blobs a schedule needs at every run (a snapshot's context and Dockerfile), kept from the
 * store's GC: $STRATA_HOME/schedules/pins/<schedule ID>.json.
 */
function pinsPath(root: string, scheduleId: string): string {
  if (!SCHEDULE_ID.test(scheduleId)) throw new Error(`schedule pins: invalid schedule ID ${JSON.stringify(scheduleId)}`);
  return path.join(root, 'schedules', 'pins', `${scheduleId}.json`);
}

export async function pinScheduleBlobs(root: string, scheduleId: string, digests: string[]): Promise<void> {
  const file = pinsPath(root, scheduleId);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(digests));
}

/** Every blob some schedule pins. */
export async function schedulePins(root: string): Promise<string[]> {
  const dir = path.join(root, 'schedules', 'pins');
  const out: string[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    let list: unknown;
    try {
      list = JSON.parse(await fs.readFile(path.join(dir, name), 'utf8'));
    } catch {
      continue; // written atomically: unreadable means removed meanwhile
    }
    if (Array.isArray(list)) out.push(...list.filter((d): d is string => typeof d === 'string'));
  }
  return out;
}
