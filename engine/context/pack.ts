// The build context: a directory filtered by .dockerignore, packed as a deterministic tar
// (sorted, uid/gid 0) so the same tree always gives the same context digest.
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, promises as fs, createReadStream, readSync, type Stats } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import ignore from '@balena/dockerignore';
import tarStream from 'tar-stream';

type EntryHeader = Partial<tarStream.Header> & { name: string };

/** Reads .dockerignore patterns (docker's syntax: `#` comments, `!` exceptions). */
export async function readDockerignore(contextDir: string, dockerfile?: string): Promise<string[]> {
  // BuildKit's per-Dockerfile file (`app.Dockerfile.dockerignore`) wins over .dockerignore.
  const candidates = dockerfile ? [`${dockerfile}.dockerignore`] : [];
  candidates.push(path.join(contextDir, '.dockerignore'));
  for (const file of candidates) {
    try {
      const text = await fs.readFile(file, 'utf8');
      return text
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return [];
}

export interface ContextFilter {
  /** True when the path (relative, `/`-separated) is left out of the context. */
  excluded(rel: string): boolean;
  /** False when no `!` exception could bring back something under an excluded directory. */
  hasExceptions: boolean;
}

export function makeFilter(patterns: string[]): ContextFilter {
  // The package is CommonJS with a Babel-style `default` export.
  const ig = ignore.default({ ignorecase: false }).add(patterns);
  return { excluded: (rel) => ig.ignores(rel), hasExceptions: patterns.some((p) => p.startsWith('!')) };
}

/**
 * Packs `contextDir` as a tar stream. Entries are sorted depth-first; regular files,
 * directories and symlinks are kept with their modes and mtimes; owners become 0:0 (COPY
 * sets owners itself). The stream errors if the tree cannot be read.
 */
export function packContext(contextDir: string, filter: ContextFilter): Readable {
  const pack = tarStream.pack();
  walk(contextDir, '', filter, pack)
    .then(() => pack.finalize())
    .catch((err: Error) => pack.destroy(err));
  return pack as unknown as Readable; // a streamx Readable, which node's pipeline accepts
}

async function walk(root: string, rel: string, filter: ContextFilter, pack: tarStream.Pack): Promise<boolean> {
  const names = (await fs.readdir(path.join(root, rel))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let wroteAny = false;
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    const host = path.join(root, childRel);
    // Synchronous: one lstat per entry, where an async call's threadpool round trip would be
    // most of the cost (as for the small files below).
    const st = lstatSync(host);
    const excluded = filter.excluded(childRel);
    if (st.isDirectory()) {
      if (excluded && !filter.hasExceptions) continue;
      if (!excluded) {
        await entry(pack, { name: `${childRel}/`, type: 'directory', ...meta(st) });
        wroteAny = true;
        await walk(root, childRel, filter, pack);
      } else {
        // An excluded directory may still hold re-included files (`!dir/keep`): look, and
        // add the directory only if something under it is kept.
        const kept: Collected[] = [];
        if (await collect(root, childRel, filter, kept)) {
          await entry(pack, { name: `${childRel}/`, type: 'directory', ...meta(st) });
          for (const k of kept) await addCollected(root, pack, k);
          wroteAny = true;
        }
      }
      continue;
    }
    if (excluded) continue;
    if (st.isSymbolicLink()) {
      await entry(pack, { name: childRel, type: 'symlink', linkname: await fs.readlink(host), ...meta(st) });
      wroteAny = true;
    } else if (st.isFile()) {
      await fileEntry(pack, childRel, host, st);
      wroteAny = true;
    }
    // Sockets, fifos and devices are not part of a build context.
  }
  return wroteAny;
}

/** Finds what survives the filter under an excluded directory, as headers in tar order. */
interface Collected {
  header: EntryHeader;
  st: Stats;
}

async function collect(root: string, rel: string, filter: ContextFilter, out: Collected[]): Promise<boolean> {
  const names = (await fs.readdir(path.join(root, rel))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let kept = false;
  for (const name of names) {
    const childRel = `${rel}/${name}`;
    const st = lstatSync(path.join(root, childRel));
    const excluded = filter.excluded(childRel);
    if (st.isDirectory()) {
      const mark = out.length;
      out.push({ header: { name: `${childRel}/`, type: 'directory', ...meta(st) }, st });
      const inner = await collect(root, childRel, filter, out);
      if (!inner && excluded) out.splice(mark, 1);
      kept ||= inner || !excluded;
    } else if (!excluded && (st.isFile() || st.isSymbolicLink())) {
      out.push({ header: { name: childRel, type: st.isFile() ? 'file' : 'symlink', ...meta(st) }, st });
      kept = true;
    }
  }
  return kept;
}

async function addCollected(root: string, pack: tarStream.Pack, { header, st }: Collected): Promise<void> {
  const host = path.join(root, header.name.replace(/\/$/, ''));
  if (header.type === 'file') return fileEntry(pack, header.name, host, st);
  if (header.type === 'symlink') return entry(pack, { ...header, linkname: await fs.readlink(host) });
  return entry(pack, header);
}

function meta(st: Stats): Partial<tarStream.Header> {
  return { mode: st.mode & 0o7777, mtime: new Date(Math.floor(st.mtimeMs / 1000) * 1000), uid: 0, gid: 0, uname: '', gname: '' };
}

/** Adds a bodiless entry (directory, symlink): tar-stream finishes those by itself. */
function entry(pack: tarStream.Pack, header: EntryHeader): Promise<void> {
  return new Promise((resolve, reject) => void pack.entry(header, (err) => (err ? reject(err) : resolve())));
}

/** Per context tar: dev:ino of a multiply-linked file → the name it was first written under. */
const firstLinks = new WeakMap<tarStream.Pack, Map<string, string>>();

async function fileEntry(pack: tarStream.Pack, name: string, host: string, st: Stats): Promise<void> {
  // Hardlinked files stay hardlinks, as docker's context tar keeps them (COPY keeps them too).
  if (st.nlink > 1) {
    let seen = firstLinks.get(pack);
    if (!seen) firstLinks.set(pack, (seen = new Map()));
    const key = `${st.dev}:${st.ino}`;
    const first = seen.get(key);
    if (first !== undefined) return entry(pack, { name, type: 'link', linkname: first, ...meta(st) });
    seen.set(key, name);
  }
  if (st.size <= SMALL_FILE) {
    const body = readSmallFile(host, st);
    return new Promise<void>((resolve, reject) => void pack.entry({ name, type: 'file', size: body.length, ...meta(st) }, body, (err) => (err ? reject(err) : resolve())));
  }
  await new Promise<void>((resolve, reject) => {
    const e = pack.entry({ name, type: 'file', size: st.size, ...meta(st) }, (err) => (err ? reject(err) : resolve()));
    pipeline(createReadStream(host), e).catch(reject);
  });
}

/**
 * Files up to this size are read whole with synchronous calls: a read stream per file costs
 * several threadpool round trips, which made most of the time of packing a context of many
 * small files on a loaded machine (docs/benchmarks.md, big-context).
 */
const SMALL_FILE = 256 * 1024;

/** A small regular file's bytes; a file swapped or resized since it was listed is an error, as a stream would fail. */
function readSmallFile(host: string, listed: Stats): Buffer {
  const fd = openSync(host, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size !== listed.size) throw new Error(`pack context: ${host} changed while it was read`);
    const buf = Buffer.allocUnsafe(st.size);
    for (let got = 0; got < buf.length;) {
      const n = readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) throw new Error(`pack context: ${host} shrank while it was read`);
      got += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}
