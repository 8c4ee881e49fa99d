// The one safe tar extractor: every entry lands inside destDir whatever its name, its link
// target or the symlinks earlier entries made (paths resolve as if destDir were `/`).
import { chmodSync, closeSync, constants as fsc, lchownSync, lstatSync, lutimesSync, mkdirSync, openSync, promises as fs, symlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { EngineError, PathEscapeError } from '../errors.js';
import { readTar, type TarEntry, type TarHeader } from '../tar/tarformat.js';
import { cleanRelative, resolveInRoot } from './scoped.js';
import { makeNodes, writeXattrs, type NodeSpec, type XattrSpec } from './special.js';

export interface ExtractOptions {
  /**
   * 'overlay': OCI whiteouts become overlay ones (`.wh.NAME` → 0/0 character device NAME,
   * `.wh..wh..opq` → trusted.overlay.opaque=y on its directory), for layer snapshots.
   * 'keep': such names are ordinary files (a build context may hold them).
   */
  whiteouts: 'overlay' | 'keep';
  /** Apply the uid/gid of each entry (default true); otherwise files belong to the caller. */
  sameOwner?: boolean;
}

export interface ExtractResult {
  /** Tar entries read (pax and long-name headers not counted). */
  entries: number;
}

/**
 * Extracts the tar read from `src` into `destDir`, an existing directory that nobody else
 * writes to while this runs. Names with `..` above the root throw PathEscapeError; absolute
 * names and symlinks resolve inside destDir; a name or link target that is not UTF-8 throws
 * TAR_UNSUPPORTED. Consumes `src` to its end; on any error stops, destroys `src` and
 * rethrows, leaving destDir half-written for the caller to remove.
 */
export async function extractTar(src: Readable, destDir: string, opts: ExtractOptions): Promise<ExtractResult> {
  const root = path.resolve(destDir);
  // Errors surface through the entry iterator below; this listener only keeps an 'error'
  // event that fires before the iterator is attached from being thrown as uncaught.
  src.on('error', noop);
  let entries = 0;
  try {
    const st = await fs.lstat(root);
    if (!st.isDirectory()) throw new EngineError('EXTRACT_DEST_INVALID', `extract tar: ${root} is not a directory`);
    const job = new Extraction(root, opts.whiteouts, opts.sameOwner ?? true);
    for await (const entry of readTar(src)) {
      entries++;
      await job.apply(entry);
    }
    await job.finish();
  } catch (err) {
    src.destroy();
    throw err;
  } finally {
    src.off('error', noop);
  }
  return { entries };
}

interface PendingNode {
  spec: NodeSpec;
  uid: number;
  gid: number;
  mtime: number;
}

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const XATTR_PAX_PREFIX = 'SCHILY.xattr.';
/** Xattr bytes queued for the end of one extraction (Linux holds at most 64 KB per file). */
export const MAX_QUEUED_XATTR_BYTES = 64 * 1024 * 1024;
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';

/**
 * The state of one extraction. Device nodes and xattrs need child processes, so they are
 * queued and made in one batch each at the end; directory times are set last, deepest
 * first, because creating children changes them. Replacing a path drops what was queued
 * for it and below it.
 */
class Extraction {
  private readonly nodes = new Map<string, PendingNode>();
  private readonly xattrs = new Map<string, Map<string, Buffer>>();
  private readonly dirTimes = new Map<string, number>();
  /** Bytes of the queued xattr values: an archive of many small compressed entries could queue gigabytes. */
  private xattrBytes = 0;

  constructor(
    private readonly root: string,
    private readonly whiteouts: 'overlay' | 'keep',
    private readonly sameOwner: boolean,
  ) {}

  async apply(entry: TarEntry): Promise<void> {
    const h = entry.header;
    const rel = cleanRelative(h.name);
    if (rel === undefined) throw new PathEscapeError(`extract tar: entry ${JSON.stringify(h.name)} climbs above the root`);
    if (rel === '') {
      // The root's own entry ("./"): destDir is given, its metadata is the caller's.
      if (h.type === 'directory') return;
      throw invalid(h, `a ${h.type ?? 'entry of unknown type'} cannot replace the root`);
    }
    const slash = rel.lastIndexOf('/');
    const parentRel = slash < 0 ? '' : rel.slice(0, slash);
    const base = rel.slice(slash + 1);

    if (this.whiteouts === 'overlay' && base.startsWith(WHITEOUT_PREFIX)) {
      await this.whiteout(h, parentRel, base);
      return;
    }

    const parent = await this.parentDir(h, parentRel);
    const target = path.join(parent, base);
    switch (h.type) {
      case 'directory':
        await this.directory(h, target);
        break;
      case 'file':
      case 'contiguous-file': // POSIX: readers without contiguous files treat them as regular
        await this.file(h, target, entry.body);
        break;
      case 'symlink':
        await this.symlink(h, target);
        break;
      case 'link':
        await this.hardlink(h, target);
        break;
      case 'character-device':
      case 'block-device':
      case 'fifo':
        await this.node(h, target);
        break;
      default: {
        // docker fails on types it does not know (GNU sparse, multi-volume…) rather than
        // silently dropping content; so do we.
        const detail = `unsupported entry type ${JSON.stringify(h.typeflag)}`;
        throw new EngineError('TAR_UNSUPPORTED', `extract tar: entry ${JSON.stringify(h.name)}: ${detail}`, { userError: true });
      }
    }
    this.queueXattrs(entry.pax, target);
    if (this.xattrBytes > MAX_QUEUED_XATTR_BYTES) {
      throw new EngineError(
        'TAR_LIMIT',
        `extract tar: entry ${JSON.stringify(h.name)}: extended attributes of more than ${MAX_QUEUED_XATTR_BYTES} bytes wait to be written (strata's limit)`,
        {
          userError: true,
        },
      );
    }
  }

  /** Makes queued nodes, applies queued xattrs, then sets directory times deepest first. */
  async finish(): Promise<void> {
    await this.flushNodes();
    const specs: XattrSpec[] = [];
    for (const [p, attrs] of this.xattrs) for (const [name, value] of attrs) specs.push({ path: p, name, value });
    // docker ignores ENOTSUP/EPERM here too (a filesystem without xattrs, user.* on a symlink).
    await writeXattrs(specs, { ignoreUnsupported: true });
    const dirs = [...this.dirTimes].sort((a, b) => depth(b[0]) - depth(a[0]));
    for (const [p, t] of dirs) await fs.lutimes(p, t, t);
  }

  private async directory(h: TarHeader, target: string): Promise<void> {
    const kept = await this.prepare(target, true);
    if (!kept) mkdirSync(target, { mode: 0o700 });
    this.chown(target, h);
    chmodSync(target, mode(h));
    this.dirTimes.set(target, mtime(h));
  }

  private async file(h: TarHeader, target: string, body: AsyncIterable<Buffer>): Promise<void> {
    await this.prepare(target, false);
    // O_EXCL|O_NOFOLLOW: prepare() removed whatever was there; never write through a link.
    const fd = openSync(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      for await (const chunk of body) writeAll(fd, chunk);
    } finally {
      closeSync(fd);
    }
    this.finishInode(h, target);
  }

  private async symlink(h: TarHeader, target: string): Promise<void> {
    if (!h.linkname) throw invalid(h, 'symlink without a target');
    await this.prepare(target, false);
    // The target is stored as written: it is only ever followed by resolveInRoot (here) or
    // inside the container, both scoped to the root.
    symlinkSync(h.linkname, target);
    this.chown(target, h);
    const t = mtime(h);
    lutimesSync(target, t, t);
  }

  private async hardlink(h: TarHeader, target: string): Promise<void> {
    const linkRel = cleanRelative(h.linkname ?? '');
    if (linkRel === undefined) {
      throw new PathEscapeError(`extract tar: hardlink ${JSON.stringify(h.name)} → ${JSON.stringify(h.linkname)} climbs above the root`);
    }
    if (linkRel === '') throw invalid(h, 'hardlink to the root');
    // Intermediate symlinks resolve inside the root; a symlink as the last component is
    // linked itself (link(2) does not follow it), like docker.
    const source = await resolveInRoot(this.root, linkRel);
    if (this.nodes.has(source)) await this.flushNodes();
    let st;
    try {
      st = await fs.lstat(source);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw invalid(h, `hardlink target ${JSON.stringify(h.linkname)} is missing`);
      throw err;
    }
    if (st.isDirectory()) throw invalid(h, `hardlink target ${JSON.stringify(h.linkname)} is a directory`);
    if (source === target) throw invalid(h, 'hardlink to itself');
    await this.prepare(target, false);
    try {
      await fs.link(source, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw invalid(h, `hardlink target ${JSON.stringify(h.linkname)} was replaced by this entry`);
      throw err;
    }
    // Like docker, the link entry's metadata is applied to the shared inode, except mode on
    // a symlink: chmod would follow it, possibly out of the root.
    this.chown(target, h);
    if (!st.isSymbolicLink()) await fs.chmod(target, mode(h));
    const t = mtime(h);
    await fs.lutimes(target, t, t);
  }

  private async node(h: TarHeader, target: string): Promise<void> {
    await this.prepare(target, false);
    const type = h.type === 'fifo' ? 'fifo' : h.type === 'block-device' ? 'block' : 'char';
    this.nodes.set(target, {
      spec: { path: target, type, major: h.devmajor, minor: h.devminor, mode: mode(h) },
      uid: h.uid,
      gid: h.gid,
      mtime: mtime(h),
    });
  }

  private async whiteout(h: TarHeader, parentRel: string, base: string): Promise<void> {
    if (base === OPAQUE_MARKER) {
      const dir = await this.parentDir(h, parentRel);
      this.setXattr(dir, 'trusted.overlay.opaque', Buffer.from('y'));
      return;
    }
    // Other `.wh..wh.` names are AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs) that means
    // nothing to overlay; docker drops them as well.
    if (base.startsWith(WHITEOUT_META_PREFIX)) return;
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '..') throw new PathEscapeError(`extract tar: whiteout ${JSON.stringify(h.name)} names a parent directory`);
    if (name === '' || name === '.') throw invalid(h, 'whiteout without a name');
    const dir = await this.parentDir(h, parentRel);
    const target = path.join(dir, name);
    await this.prepare(target, false);
    // The overlay whiteout: a 0/0 character device, mode 0, owned like the tar entry.
    this.nodes.set(target, {
      spec: { path: target, type: 'char', major: 0, minor: 0, mode: 0 },
      uid: h.uid,
      gid: h.gid,
      mtime: mtime(h),
    });
  }

  /** Resolves (symlinks scoped to the root) and creates the directory an entry goes into. */
  private async parentDir(h: TarHeader, parentRel: string): Promise<string> {
    const dir = await resolveInRoot(this.root, parentRel, { followFinal: true });
    if (this.nodes.size > 0) {
      for (let p = dir; p !== this.root && p.length > this.root.length; p = path.dirname(p)) {
        if (this.nodes.has(p)) throw invalid(h, `parent ${path.relative(this.root, p)} is not a directory`);
      }
    }
    try {
      mkdirSync(dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' || code === 'ENOTDIR') throw invalid(h, `parent ${path.relative(this.root, dir)} is not a directory`);
      throw err;
    }
    return dir;
  }

  /**
   * Clears the way for a new entry at `target`: whatever is there goes, unless it is a
   * directory and so is the entry. Returns true when an existing directory is kept.
   */
  private async prepare(target: string, isDir: boolean): Promise<boolean> {
    let st;
    try {
      st = lstatSync(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (st?.isDirectory() && isDir) return true;
    if (st !== undefined) await fs.rm(target, { recursive: true, force: true }); // never follows links
    if (st !== undefined || this.nodes.has(target)) this.forget(target);
    return false;
  }

  /** Drops everything queued for `p` and below it: that part of the tree was replaced. */
  private forget(p: string): void {
    const under = p + '/';
    for (const map of [this.nodes, this.xattrs, this.dirTimes] as Map<string, unknown>[]) {
      for (const k of map.keys()) if (k === p || k.startsWith(under)) map.delete(k);
    }
  }

  private async flushNodes(): Promise<void> {
    if (this.nodes.size === 0) return;
    const batch = [...this.nodes.values()];
    this.nodes.clear();
    await makeNodes(batch.map((n) => n.spec));
    for (const n of batch) {
      if (this.sameOwner) await fs.lchown(n.spec.path, n.uid, n.gid);
      await fs.chmod(n.spec.path, n.spec.mode); // after chown, which may clear setuid/setgid
      await fs.lutimes(n.spec.path, n.mtime, n.mtime);
    }
  }

  /**
   * Owner, then mode (chown clears setuid/setgid), then times, for a file. The calls on one
   * entry's inode are synchronous, as its open and writes: per file they are the extraction's
   * whole cost, and each async call would wait for a threadpool thread (docs/benchmarks.md).
   */
  private finishInode(h: TarHeader, target: string): void {
    this.chown(target, h);
    chmodSync(target, mode(h));
    const t = mtime(h);
    lutimesSync(target, t, t);
  }

  private chown(target: string, h: TarHeader): void {
    if (!this.sameOwner) return;
    lchownSync(target, h.uid, h.gid);
  }

  private queueXattrs(pax: Map<string, Buffer>, target: string): void {
    for (const [key, value] of pax) {
      if (!key.startsWith(XATTR_PAX_PREFIX)) continue;
      const name = key.slice(XATTR_PAX_PREFIX.length);
      // Overlay metadata comes only from whiteout conversion; a layer must not be able to
      // plant redirects, origins or opaque flags of its own.
      if (name === '' || name.startsWith(OVERLAY_XATTR_PREFIX)) continue;
      this.setXattr(target, name, value);
    }
  }

  private setXattr(target: string, name: string, value: Buffer): void {
    let attrs = this.xattrs.get(target);
    if (!attrs) this.xattrs.set(target, (attrs = new Map()));
    attrs.set(name, value);
    // Counted when queued, not taken back when a replaced path drops its queue: a bound, not a tally.
    this.xattrBytes += name.length + value.length;
  }
}

function invalid(h: TarHeader, detail: string): EngineError {
  return new EngineError('TAR_INVALID', `extract tar: entry ${JSON.stringify(h.name)}: ${detail}`, { userError: true });
}

function mode(h: TarHeader): number {
  return h.mode & 0o7777;
}

/** Seconds since the epoch. */
function mtime(h: TarHeader): number {
  return h.mtime.getTime() / 1000;
}

function depth(p: string): number {
  let n = 0;
  for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1)) n++;
  return n;
}

function writeAll(fd: number, chunk: Buffer): void {
  for (let off = 0; off < chunk.length;) off += writeSync(fd, chunk, off, chunk.length - off);
}

function noop(): void {}
