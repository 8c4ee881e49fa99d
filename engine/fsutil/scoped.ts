// The one place that turns a path inside a rootfs into a host path. Symlinks are followed
// as if `root` were `/`: an absolute link target restarts at root, and `..` never climbs
// above it, so the result always lies inside root (what chroot would see, without chroot).
import { constants as fsConstants, lstatSync, promises as fs, readlinkSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PathEscapeError } from '../errors.js';

const MAX_SYMLINKS = 40; // Linux's MAXSYMLINKS

export interface ResolveOptions {
  /** Follow a symlink in the last component too (default false: return the link itself). */
  followFinal?: boolean;
}

/**
 * Resolves `p` (absolute or relative to the rootfs's `/`) inside `root`. Components that
 * do not exist are appended as they are, so the result can name something to create.
 * Returns an absolute host path that is `root` or below it. Its lstat and readlink calls are
 * synchronous: it runs once or more per file of every copy and extraction, and an async call's
 * threadpool round trip costs far more than the call on a local disk (docs/benchmarks.md).
 */
export async function resolveInRoot(root: string, p: string, opts: ResolveOptions = {}): Promise<string> {
  const absRoot = path.resolve(root);
  let pending = splitComponents(p);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '.') continue;
    if (name === '..') {
      resolved.pop();
      continue;
    }
    const host = path.join(absRoot, ...resolved, name);
    const isLast = pending.length === 0;
    let st;
    try {
      st = lstatSync(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        resolved.push(name, ...pending.filter((c) => c !== '.'));
        return joinChecked(absRoot, normalizeComponents(resolved));
      }
      if (code === 'ENOTDIR') throw new PathEscapeError(`resolve path: ${p}: a component is not a directory`);
      throw err;
    }
    if (st.isSymbolicLink() && (!isLast || opts.followFinal)) {
      if (++links > MAX_SYMLINKS) throw new PathEscapeError(`resolve path: ${p}: too many levels of symbolic links`);
      const target = readlinkSync(host);
      if (target.startsWith('/')) resolved.length = 0;
      pending = [...splitComponents(target), ...pending];
      continue;
    }
    resolved.push(name);
  }
  return joinChecked(absRoot, resolved);
}

function splitComponents(p: string): string[] {
  return p.split('/').filter((c) => c !== '');
}

/** `..` inside the not-yet-existing tail is still clamped at root. */
function normalizeComponents(components: string[]): string[] {
  const out: string[] = [];
  for (const c of components) {
    if (c === '..') out.pop();
    else if (c !== '.') out.push(c);
  }
  return out;
}

function joinChecked(root: string, components: string[]): string {
  const result = path.join(root, ...components);
  if (result !== root && !result.startsWith(root + path.sep)) {
    throw new PathEscapeError(`resolve path: ${components.join('/')} escapes ${root}`);
  }
  return result;
}

/**
 * Cleans a path from a tar header or a COPY destination the way docker does before use:
 * strips leading `/` and `./`, resolves `.` and `..` lexically. Returns undefined for a
 * name that would climb above the root (the caller rejects it).
 */
export function cleanRelative(name: string): string | undefined {
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) return undefined;
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out.join('/');
}

/** O_PATH: a handle that names an inode without opening it (no fifo waits, no device opens). */
const O_PATH = 0o10000000;
const { O_NOFOLLOW, O_DIRECTORY, O_RDONLY } = fsConstants;

/** One entry reached without following any symlink; valid only inside the callback. */
export interface ScopedEntry {
  /** The entry's own metadata (a symlink is never followed to reach it). */
  stats: Stats;
  /** A host path that names this very inode, whatever is renamed or swapped meanwhile (also for a child process of this one). */
  handlePath: string;
  /** The names in it, for a directory. */
  list(): Promise<string[]>;
  /** Removes it (rmdir for a directory, which must be empty; unlink otherwise). */
  remove(): Promise<void>;
}

/**
 * Reaches `rel` (a path inside `root`, e.g. an upperdir or a rootfs) component by component
 * as openat(2) with O_NOFOLLOW would: each parent must be a real directory, never a symlink,
 * and each step is taken from the descriptor of the one before (/proc/self/fd/N), so a
 * symlink a build left anywhere on the way, or one swapped in meanwhile, leads nowhere.
 * Returns fn's result, or undefined when the path does not lie there as plain directories
 * (a component missing, a symlink, or a parent that is not a directory). For clean-ups after
 * a step: whatever the step left cannot make them touch anything outside `root`.
 */
export async function atInRoot<T>(root: string, rel: string, fn: (entry: ScopedEntry) => Promise<T>): Promise<T | undefined> {
  const names = cleanRelative(rel)?.split('/').filter(Boolean);
  if (!names || names.length === 0) return undefined;
  const handles: FileHandle[] = [];
  const open = async (p: string, flags: number) => {
    try {
      const h = await fs.open(p, flags);
      handles.push(h);
      return h;
    } catch (err) {
      if (['ENOENT', 'ENOTDIR', 'ELOOP'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw err;
    }
  };
  try {
    let dir = await open(path.resolve(root), O_PATH | O_DIRECTORY);
    for (const name of names.slice(0, -1)) {
      if (!dir) return undefined;
      dir = await open(`/proc/self/fd/${dir.fd}/${name}`, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    }
    if (!dir) return undefined;
    const last = names[names.length - 1]!;
    const parentPath = `/proc/self/fd/${dir.fd}`;
    const self = await open(`${parentPath}/${last}`, O_PATH | O_NOFOLLOW);
    if (!self) return undefined;
    const stats = await self.stat();
    // By pid, not /proc/self: a child process (getfattr) may be given this path.
    const handlePath = `/proc/${process.pid}/fd/${self.fd}`;
    return await fn({
      stats,
      handlePath,
      list: async () => {
        // O_PATH cannot read: reopen the same inode for reading through its handle.
        const d = await fs.open(handlePath, O_RDONLY | O_DIRECTORY);
        try {
          return await fs.readdir(`/proc/self/fd/${d.fd}`);
        } finally {
          await d.close();
        }
      },
      remove: () => (stats.isDirectory() ? fs.rmdir(`${parentPath}/${last}`) : fs.unlink(`${parentPath}/${last}`)),
    });
  } finally {
    for (const h of handles.reverse()) await h.close();
  }
}

/** lstat of `rel` inside `root` without following a symlink on the way; undefined when absent. */
export function lstatInRoot(root: string, rel: string): Promise<Stats | undefined> {
  return atInRoot(root, rel, async (e) => e.stats);
}
