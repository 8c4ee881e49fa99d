// A worker's own outputs (`--output` of a build it runs for someone else): written inside
// the directory the worker was given (STRATA_OUTPUT_DIR) and nowhere else. Anyone who reaches
// Temporal chooses `dest`, so the path is walked one directory at a time without following
// symlinks, and the tar is written through the opened directory (/proc/self/fd/N/NAME): a
// directory swapped for a symlink after the check still cannot send the write elsewhere.
import { constants as fsc, promises as fs } from 'node:fs';
import path from 'node:path';
import { UserInputError } from '../errors.js';
import type { Store } from '../store/store.js';
import { saveImages, type SaveItem } from './save.js';

function refuse(dest: string, detail: string): UserInputError {
  return new UserInputError('OUTPUT_REFUSED', `save image: refused dest ${JSON.stringify(dest.length > 300 ? dest.slice(0, 300) + '…' : dest)}: ${detail}`);
}

/**
 * The components of `dest` below `outputDir`: an absolute dest must lie under it, a relative
 * one is taken from it. Throws OUTPUT_REFUSED for anything else, a `..` or `.` component, an
 * empty name or a NUL.
 */
export function outputComponents(outputDir: string, dest: string): string[] {
  if (dest === '' || dest.includes('\0')) throw refuse(dest, 'not a file name');
  const root = path.resolve(outputDir);
  let rel = dest;
  if (path.isAbsolute(dest)) {
    if (dest !== root && !dest.startsWith(root + '/') && !(root === '/' && dest.length > 1))
      throw refuse(dest, `it is not inside the worker's output directory ${root} (STRATA_OUTPUT_DIR)`);
    rel = dest.slice(root.length);
  }
  const parts = rel.split('/').filter((c) => c !== '');
  if (parts.some((c) => c === '..' || c === '.')) throw refuse(dest, 'a `..` or `.` component is not allowed');
  if (parts.length === 0 || dest.endsWith('/')) throw refuse(dest, 'it names a directory, not a file');
  return parts;
}

/**
 * Saves `items` (as saveImages) to `dest` inside `outputDir`; undefined `outputDir` refuses
 * every output. Every directory on the way must exist and be a real directory (no symlink);
 * the file itself, when it exists, must be a regular file. Returns the path written, as the
 * output directory names it, and the size.
 */
export async function saveToOutputDir(store: Store, items: SaveItem[], outputDir: string | undefined, dest: string): Promise<{ dest: string; size: number }> {
  if (outputDir === undefined) {
    throw refuse(dest, 'this worker writes no files (start it with STRATA_OUTPUT_DIR=DIR to let builds write under DIR)');
  }
  const parts = outputComponents(outputDir, dest);
  const name = parts.pop()!;
  const handles: fs.FileHandle[] = [];
  try {
    // The output directory itself is the worker's configuration: followed like any path.
    let dir = await fs.open(path.resolve(outputDir), fsc.O_RDONLY | fsc.O_DIRECTORY).catch((err: NodeJS.ErrnoException) => {
      throw refuse(dest, `the output directory ${outputDir} cannot be opened (${err.code ?? err.message})`);
    });
    handles.push(dir);
    for (const part of parts) {
      const next = await fs.open(`/proc/self/fd/${dir.fd}/${part}`, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw refuse(dest, `directory ${part} does not exist`);
        if (err.code !== 'ELOOP' && err.code !== 'ENOTDIR') throw err;
        return undefined;
      });
      if (next === undefined) {
        // O_NOFOLLOW with O_DIRECTORY says ENOTDIR for a symlink as for a file: look.
        const link = (await fs.lstat(`/proc/self/fd/${dir.fd}/${part}`).catch(() => undefined))?.isSymbolicLink();
        throw refuse(dest, link ? `${part} is a symbolic link, which could lead out of the output directory` : `${part} is not a directory`);
      }
      dir = next;
      handles.push(dir);
    }
    const target = `/proc/self/fd/${dir.fd}/${name}`;
    const st = await fs.lstat(target).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (st?.isSymbolicLink()) throw refuse(dest, `${name} is a symbolic link, which could lead out of the output directory`);
    if (st && !st.isFile()) throw refuse(dest, `${name} exists and is not a regular file`);
    const { size } = await saveImages(store, items, target);
    return { dest: path.join(path.resolve(outputDir), ...parts, name), size };
  } finally {
    for (const h of handles.reverse()) await h.close();
  }
}
