// Atomic file writes: temp file in the same filesystem, fsync, rename into place.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Names this process in the temp entries it makes (`<prefix>-<tag>-<random>`), so a worker
 * can tell a dead process's leftovers from a live one's (engine/store/owners.ts). A pid
 * would not do: workers in containers sharing one store are all pid 1.
 */
export const PROCESS_TAG = randomBytes(6).toString('hex');

/** A fresh temp entry name, `PREFIX-TAG-RANDOM`: owners.ts reads the tag back out of it. */
export function tempEntryName(prefix: string): string {
  return `${prefix}-${PROCESS_TAG}-${randomBytes(6).toString('hex')}`;
}

export function tempName(dir: string, prefix = 'tmp'): string {
  return path.join(dir, `.${tempEntryName(prefix)}`);
}

/**
 * Writes `data` to `file` so that readers see the old content or the new, never a part.
 * `sync: false` skips the fsync: still whole for readers and across a process crash, but a
 * power loss may lose the file (for what can be lost, never for what names other files).
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644, opts: { sync?: boolean } = {}): Promise<void> {
  const tmp = tempName(path.dirname(file));
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    if (opts.sync !== false) await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** fsyncs a directory so a rename inside it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
