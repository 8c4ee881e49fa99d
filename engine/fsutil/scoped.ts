// The one place that turns a path inside a rootfs into a host path. Symlinks are followed
// as if `root` were `/`: an absolute link target restarts at root, and `..` never climbs
// above it, so the result always lies inside root (what chroot would see, without chroot).
import { promises as fs } from 'node:fs';
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
 * Returns an absolute host path that is `root` or below it.
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
      st = await fs.lstat(host);
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
      const target = await fs.readlink(host);
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
