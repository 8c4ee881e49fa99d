// Test runs that share one dockerd (a developer's runs beside CI, parallel worktrees) mark
// themselves here, so the last one to leave removes the shared base image, and none pulls it
// from under another.
import { promises as fs } from 'node:fs';
import path from 'node:path';

const DIR = '/tmp/strata-test-docker-users';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Marks this process as a user of the shared docker images. */
export async function joinDockerUsers(): Promise<void> {
  await fs.mkdir(DIR, { recursive: true });
  await fs.writeFile(path.join(DIR, String(process.pid)), '');
}

/** Drops this process's mark; true when no other live run uses the shared images. */
export async function leaveDockerUsers(): Promise<boolean> {
  await fs.rm(path.join(DIR, String(process.pid)), { force: true });
  const others = (await fs.readdir(DIR).catch(() => [] as string[])).map(Number).filter((pid) => Number.isInteger(pid) && pid !== process.pid);
  return others.filter(alive).length === 0;
}
