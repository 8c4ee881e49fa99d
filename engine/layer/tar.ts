// The deterministic layer tar: a snapshot directory (an overlay upperdir or a layer's diff/)
// becomes an uncompressed OCI layer tar, the same bytes for the same tree and options, so a
// layer's diff_id can be recomputed from its snapshot at save and push time.
// Format: https://github.com/opencontainers/image-spec/blob/main/layer.md
import { closeSync, constants as fsc, lstatSync, openSync, promises as fs, readlinkSync, readSync, type BigIntStats } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { DigestStream, type Digest } from '../digest.js';
import { EngineError } from '../errors.js';
import { readXattrsTree, xattrKey, type Xattrs } from '../fsutil/special.js';
import { blockPadding, encodeEntryHeader, endOfArchive, printable, type EntryHeader, type PaxRecord } from '../tar/tarformat.js';

export interface LayerTarOptions {
  /** SOURCE_DATE_EPOCH in seconds: every mtime later than it is clamped down to it. */
  sourceDateEpoch?: number;
}

export interface LayerTarResult {
  /** Bytes written to `out`. */
  size: number;
}

export interface LayerDigestResult {
  /** sha256 of the uncompressed layer tar (the OCI diff_id). */
  diffId: Digest;
  size: number;
}

/**
 * Writes the snapshot at `snapshotDir` as a layer tar to `out`: depth-first, each
 * directory's entries in byte order of their names, a directory before its children, no
 * entry for the root. Overlay whiteouts become OCI whiteouts. Identical trees and options
 * give identical bytes. Ends `out` on success and destroys it on failure (pipeline rules);
 * the snapshot must not change while this runs.
 */
export async function writeLayerTar(snapshotDir: string, out: Writable, opts: LayerTarOptions = {}): Promise<LayerTarResult> {
  let size = 0;
  // Each chunk is made when `out` asks for it, so a slow consumer holds back the file reads.
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of layerTar(snapshotDir, opts.sourceDateEpoch)) {
      size += chunk.length;
      yield chunk;
    }
  }
  await pipeline(counted, out);
  return { size };
}

/**
 * Computes the diff_id and size of the layer tar of `snapshotDir` by streaming the tar into
 * sha256 only: nothing is kept in memory or written to disk.
 */
export async function hashLayerTar(snapshotDir: string, opts: LayerTarOptions = {}): Promise<LayerDigestResult> {
  const sink = new DigestStream();
  sink.resume(); // the hash is all we want; let the bytes fall through
  const { size } = await writeLayerTar(snapshotDir, sink, opts);
  return { diffId: sink.digest(), size };
}

const WHITEOUT_PREFIX = Buffer.from('.wh.');
const OPAQUE_MARKER = Buffer.from('.wh..wh..opq');
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';
const SLASH = Buffer.from('/');
/** Largest piece of a file read at once. */
const READ_CHUNK = 1 << 20;
/**
 * Files up to this size are read with synchronous calls on the main thread. Each async fs call
 * waits for a threadpool thread and a turn of the event loop; for a small file those waits are
 * the whole cost (five calls a file: lstat, open, two reads, close), and on a loaded machine
 * they made a layer of 20,000 small files take 10–15 s to hash against 0.5 s this way
 * (docs/benchmarks.md). Large files keep the async path, where the bytes dominate.
 */
const SYNC_READ_MAX = 256 * 1024;
/** The walk gives the event loop a turn this often, so heartbeats and cancellation still run. */
const YIELD_EVERY_MS = 20;

async function* layerTar(snapshotDir: string, epoch: number | undefined): AsyncGenerator<Buffer> {
  if (epoch !== undefined && !(Number.isSafeInteger(epoch) && epoch >= 0)) {
    throw new TypeError(`write layer tar: sourceDateEpoch must be a non-negative integer, got ${epoch}`);
  }
  const root = path.resolve(snapshotDir);
  const xattrs = await readXattrsTree(root);
  const rootStat = await fs.lstat(root, { bigint: true });
  if (!rootStat.isDirectory()) throw new EngineError('LAYER_SNAPSHOT_INVALID', `write layer tar: ${root} is not a directory`);
  const walker = new Walker(xattrs, epoch);
  yield* walker.children(Buffer.alloc(0), Buffer.from(root), isOpaque(xattrs.get('')), mtimeSeconds(rootStat));
  yield endOfArchive();
}

interface Child {
  /** The name as it appears in the tar (whiteouts renamed), the sort key. */
  tarName: Buffer;
  kind: 'entry' | 'whiteout' | 'opaque';
  /** On-disk name, for 'entry' and 'whiteout'. */
  diskName?: Buffer;
  stat?: BigIntStats;
}

// Names are bytes from readdir to the tar: whatever a RUN step named a file is written as is.
class Walker {
  /** dev:ino of every multiply-linked non-directory written so far → its tar name. */
  private readonly firstLink = new Map<string, Buffer>();
  private lastTurn = Date.now();

  constructor(
    private readonly xattrs: Map<string, Xattrs>,
    private readonly epoch: number | undefined,
  ) {}

  /** The children of directory `host` (tar prefix `rel`, empty or ending in '/'). */
  async *children(rel: Buffer, host: Buffer, opaque: boolean, dirMtime: number): AsyncGenerator<Buffer> {
    const dirents = await fs.readdir(host, { encoding: 'buffer', withFileTypes: true });
    const list: Child[] = [];
    for (const d of dirents) {
      // Whiteouts must be recognised before sorting (their tar name differs) and before the
      // hardlink check: the kernel makes them hardlinks of one shared whiteout inode.
      if (d.isCharacterDevice()) {
        const st = lstatSync(hostPath(host, d.name), { bigint: true });
        if (st.rdev === 0n) {
          list.push({ tarName: Buffer.concat([WHITEOUT_PREFIX, d.name]), kind: 'whiteout', diskName: d.name, stat: st });
          continue;
        }
      }
      list.push({ tarName: d.name, kind: 'entry', diskName: d.name });
    }
    if (opaque) list.push({ tarName: OPAQUE_MARKER, kind: 'opaque' });
    list.sort((a, b) => Buffer.compare(a.tarName, b.tarName));

    for (const c of list) {
      const name = Buffer.concat([rel, c.tarName]);
      if (c.kind === 'opaque') {
        yield this.marker(name, dirMtime);
      } else if (c.kind === 'whiteout') {
        yield this.marker(name, mtimeSeconds(c.stat!));
      } else {
        yield* this.entry(name, hostPath(host, c.diskName!));
      }
    }
  }

  /** An OCI whiteout or opaque marker: an empty file with neutral metadata. */
  private marker(name: Buffer, mtime: number): Buffer {
    return encodeEntryHeader({ name, type: 'file', mode: 0, uid: 0, gid: 0, size: 0, mtime: this.clamped(mtime) });
  }

  private async *entry(rel: Buffer, host: Buffer): AsyncGenerator<Buffer> {
    if (Date.now() - this.lastTurn >= YIELD_EVERY_MS) {
      await nextTurn();
      this.lastTurn = Date.now();
    }
    const st = lstatSync(host, { bigint: true });
    const format = Number(st.mode) & fsc.S_IFMT;
    if (format === fsc.S_IFSOCK) return; // a socket cannot be archived; docker skips them too
    const header: EntryHeader = {
      name: rel,
      type: 'file',
      mode: Number(st.mode) & 0o7777,
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: 0,
      mtime: this.clamped(mtimeSeconds(st)),
    };
    const attrs = this.xattrs.get(xattrKey(rel));
    const records = xattrRecords(rel, attrs);

    if (format === fsc.S_IFDIR) {
      header.name = Buffer.concat([rel, SLASH]);
      header.type = 'directory';
      yield encodeEntryHeader(header, records);
      yield* this.children(header.name, host, isOpaque(attrs), mtimeSeconds(st));
      return;
    }

    if (st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.firstLink.get(key);
      if (first !== undefined) {
        yield encodeEntryHeader({ ...header, type: 'link', linkname: first }, records);
        return;
      }
      this.firstLink.set(key, rel);
    }

    switch (format) {
      case fsc.S_IFREG: {
        const size = Number(st.size);
        yield encodeEntryHeader({ ...header, size }, records);
        if (size === 0) return;
        if (size <= SYNC_READ_MAX) yield smallFileBody(rel, host, size);
        else yield* fileBody(rel, host, size);
        yield blockPadding(size);
        return;
      }
      case fsc.S_IFLNK:
        yield encodeEntryHeader({ ...header, type: 'symlink', linkname: readlinkSync(host, { encoding: 'buffer' }) }, records);
        return;
      case fsc.S_IFCHR:
      case fsc.S_IFBLK: {
        const type = format === fsc.S_IFCHR ? 'character-device' : 'block-device';
        yield encodeEntryHeader({ ...header, type, devmajor: major(st.rdev), devminor: minor(st.rdev) }, records);
        return;
      }
      case fsc.S_IFIFO:
        yield encodeEntryHeader({ ...header, type: 'fifo' }, records);
        return;
      default:
        throw new EngineError('LAYER_UNSUPPORTED', `write layer tar: ${printable(rel)}: unknown file type 0o${format.toString(8)}`);
    }
  }

  private clamped(seconds: number): number {
    return this.epoch !== undefined && seconds > this.epoch ? this.epoch : seconds;
  }
}

/** The entry's xattrs as pax records, in byte order of their names. */
function xattrRecords(rel: Buffer, attrs: Xattrs | undefined): PaxRecord[] {
  if (attrs === undefined) return [];
  // The kernel's own bookkeeping (uuid, origin, impure, opaque, redirect…) describes this
  // host's overlay mount, not the image: never part of a layer. Opaque becomes a marker.
  const names = [...attrs.keys()].filter((n) => !n.startsWith(OVERLAY_XATTR_PREFIX)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return names.map((n) => {
    // A pax key ends at its first '=': such a name would be read back as another one.
    if (n.includes('=')) {
      throw new EngineError('LAYER_UNSUPPORTED', `write layer tar: ${printable(rel)}: xattr ${n}: name contains '='`, { userError: true });
    }
    return [`SCHILY.xattr.${n}`, attrs.get(n)!];
  });
}

/**
 * Streams `size` bytes of a regular file. A file that shrinks or grows while it is read is
 * an error: its header already promised `size` bytes, and a tar of half the old and half
 * the new content must not pass for the snapshot.
 */
async function* fileBody(rel: Buffer, host: Buffer, size: number): AsyncGenerator<Buffer> {
  // O_NOFOLLOW: the path was lstat'ed as a regular file; never read through a swapped-in link.
  const fh = await fs.open(host, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    for (let left = size; left > 0;) {
      const want = Math.min(left, READ_CHUNK);
      const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(want), 0, want, null);
      if (bytesRead === 0) throw sizeChanged(rel, size, 'shrank');
      left -= bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
    if ((await fh.read(Buffer.alloc(1), 0, 1, null)).bytesRead > 0) throw sizeChanged(rel, size, 'grew');
  } finally {
    await fh.close();
  }
}

/** fileBody's rules, for a small file read whole with synchronous calls. */
function smallFileBody(rel: Buffer, host: Buffer, size: number): Buffer {
  const fd = openSync(host, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    // One byte more than promised: reading it tells a file that grew.
    const buf = Buffer.allocUnsafe(size + 1);
    let got = 0;
    for (;;) {
      const n = readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
      if (got > size) throw sizeChanged(rel, size, 'grew');
    }
    if (got < size) throw sizeChanged(rel, size, 'shrank');
    return buf.subarray(0, size);
  } finally {
    closeSync(fd);
  }
}

function sizeChanged(rel: Buffer, size: number, how: string): EngineError {
  return new EngineError('LAYER_TAR_FAILED', `write layer tar: ${printable(rel)}: the file ${how} from ${size} bytes while it was read`);
}

function hostPath(dir: Buffer, name: Buffer): Buffer {
  return Buffer.concat([dir, SLASH, name]);
}

function isOpaque(attrs: Xattrs | undefined): boolean {
  // 'y' only: since Linux 6.7 'x' marks a directory that holds xattr whiteouts, not opaque.
  const v = attrs?.get('trusted.overlay.opaque');
  return v !== undefined && v.length === 1 && v[0] === 0x79;
}

function mtimeSeconds(st: BigIntStats): number {
  const ns = st.mtimeNs;
  let s = ns / 1_000_000_000n;
  if (ns < 0n && s * 1_000_000_000n !== ns) s -= 1n; // floor, not truncation, before 1970
  return Number(s);
}

// Linux's dev_t encoding (glibc gnu_dev_major/minor).
function major(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}
function minor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}
