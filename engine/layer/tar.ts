// The deterministic layer tar: a snapshot directory (an overlay upperdir or a layer's diff/)
// becomes an uncompressed OCI layer tar, the same bytes for the same tree and options, so a
// layer's diff_id can be recomputed from its snapshot at save and push time.
// Format: https://github.com/opencontainers/image-spec/blob/main/layer.md
import { drained } from '../fsutil/drain.js';
import { isUtf8 } from 'node:buffer';
import { constants as fsc, promises as fs, type BigIntStats } from 'node:fs';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import type { Header, Pack } from 'tar-stream';
import { DigestStream, type Digest } from '../digest.js';
import { EngineError } from '../errors.js';
import { readXattrsTree, type Xattrs } from '../fsutil/special.js';

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
  const epoch = opts.sourceDateEpoch;
  const root = path.resolve(snapshotDir);
  const pack = tarStream.pack();
  // Errors are observed through the entry callbacks and the iterator below; without a
  // listener an 'error' event would be thrown as uncaught.
  pack.on('error', noop);
  let size = 0;
  async function* bytes(): AsyncGenerator<Buffer> {
    for await (const chunk of pack) {
      size += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
  }
  // The pipeline starts first so that every failure, the early ones included, reaches `out`
  // the same way: through pack.destroy(err), then pipeline's destroy of `out`.
  const consuming = pipeline(bytes, out);
  const producing = (async () => {
    if (epoch !== undefined && !(Number.isSafeInteger(epoch) && epoch >= 0)) {
      throw new TypeError(`write layer tar: sourceDateEpoch must be a non-negative integer, got ${epoch}`);
    }
    const xattrs = await readXattrsTree(root);
    const rootStat = await fs.lstat(root, { bigint: true });
    if (!rootStat.isDirectory()) throw new EngineError('LAYER_SNAPSHOT_INVALID', `write layer tar: ${root} is not a directory`);
    const walker = new Walker(pack, xattrs, epoch);
    await walker.children('', root, isOpaque(xattrs.get('')), mtimeSeconds(rootStat));
    pack.finalize();
  })();
  producing.catch((err: unknown) => pack.destroy(err as Error));

  const [produced, consumed] = await Promise.allSettled([producing, consuming]);
  // A producer failure reaches the consumer as the same error through pack.destroy; a
  // consumer failure (out broke) reaches the producer only as "destroyed", so prefer it.
  if (consumed.status === 'rejected') throw consumed.reason;
  if (produced.status === 'rejected') throw produced.reason;
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

// tar-stream writes `pax` records in key order; it types them as unknown.
type PackHeader = Partial<Omit<Header, 'pax'>> & { name: string; pax?: Record<string, string> };
type Sink = ReturnType<Pack['entry']>;

const WHITEOUT_PREFIX = Buffer.from('.wh.');
const OPAQUE_MARKER = Buffer.from('.wh..wh..opq');
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';
// tar-stream writes uid, gid in 6 octal digits and mtime through a 32-bit int; beyond that
// the value goes into a pax record (what readers use), the header field gets a fixed stand-in.
const MAX_USTAR_ID = 0o777777;
const MAX_USTAR_TIME = 0x7fffffff;

interface Child {
  /** The name as it appears in the tar (whiteouts renamed), the sort key. */
  tarName: Buffer;
  kind: 'entry' | 'whiteout' | 'opaque';
  /** On-disk name, for 'entry' and 'whiteout'. */
  diskName?: string;
  stat?: BigIntStats;
}

class Walker {
  /** dev:ino of every multiply-linked non-directory written so far → its tar name. */
  private readonly firstLink = new Map<string, string>();

  constructor(
    private readonly pack: Pack,
    private readonly xattrs: Map<string, Xattrs>,
    private readonly epoch: number | undefined,
  ) {}

  /** Writes the children of directory `host` (tar prefix `rel`, '' or ending in '/'). */
  async children(rel: string, host: string, opaque: boolean, dirMtime: number): Promise<void> {
    const dirents = await fs.readdir(host, { encoding: 'buffer', withFileTypes: true });
    const list: Child[] = [];
    for (const d of dirents) {
      // tar-stream encodes names from JS strings as UTF-8: other bytes cannot be carried.
      if (!isUtf8(d.name)) {
        throw new EngineError('LAYER_UNSUPPORTED', `write layer tar: ${rel}${d.name.toString('latin1')}: file name is not valid UTF-8`, {
          userError: true,
        });
      }
      const diskName = d.name.toString('utf8');
      // Whiteouts must be recognised before sorting (their tar name differs) and before the
      // hardlink check: the kernel makes them hardlinks of one shared whiteout inode.
      if (d.isCharacterDevice()) {
        const st = await fs.lstat(path.join(host, diskName), { bigint: true });
        if (st.rdev === 0n) {
          list.push({ tarName: Buffer.concat([WHITEOUT_PREFIX, d.name]), kind: 'whiteout', diskName, stat: st });
          continue;
        }
      }
      list.push({ tarName: d.name, kind: 'entry', diskName });
    }
    if (opaque) list.push({ tarName: OPAQUE_MARKER, kind: 'opaque' });
    list.sort((a, b) => Buffer.compare(a.tarName, b.tarName));

    for (const c of list) {
      const name = rel + c.tarName.toString('utf8');
      if (c.kind === 'opaque') {
        await this.marker(name, dirMtime);
      } else if (c.kind === 'whiteout') {
        await this.marker(name, mtimeSeconds(c.stat!));
      } else {
        await this.entry(rel + c.diskName!, path.join(host, c.diskName!));
      }
    }
  }

  /** An OCI whiteout or opaque marker: an empty file with neutral metadata. */
  private async marker(name: string, mtime: number): Promise<void> {
    const header: PackHeader = { name, type: 'file', mode: fsc.S_IFREG, uid: 0, gid: 0, size: 0, uname: '', gname: '' };
    this.setTime(header, mtime);
    await addEntry(this.pack, header, Buffer.alloc(0));
  }

  private async entry(rel: string, host: string): Promise<void> {
    const st = await fs.lstat(host, { bigint: true });
    const format = Number(st.mode) & fsc.S_IFMT;
    if (format === fsc.S_IFSOCK) return; // a socket cannot be archived; docker skips them too
    const header: PackHeader = {
      name: rel,
      // The type bits stay in: tar-stream replaces a mode of 0 by 0644/0755 and masks the
      // field to 0o7777 when encoding, so a chmod 000 file keeps its mode this way.
      mode: Number(st.mode) & (fsc.S_IFMT | 0o7777),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: 0,
      uname: '',
      gname: '',
    };
    this.setTime(header, mtimeSeconds(st));
    this.setIds(header);
    const attrs = this.xattrs.get(rel);
    this.setXattrs(header, rel, attrs);

    if (format === fsc.S_IFDIR) {
      header.name = rel + '/';
      header.type = 'directory';
      await addEntry(this.pack, header);
      await this.children(rel + '/', host, isOpaque(attrs), mtimeSeconds(st));
      return;
    }

    if (st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.firstLink.get(key);
      if (first !== undefined) {
        header.type = 'link';
        header.linkname = first;
        await addEntry(this.pack, header);
        return;
      }
      this.firstLink.set(key, rel);
    }

    switch (format) {
      case fsc.S_IFREG:
        header.type = 'file';
        header.size = Number(st.size);
        await addFileEntry(this.pack, header, host);
        return;
      case fsc.S_IFLNK: {
        const target = await fs.readlink(host, { encoding: 'buffer' });
        if (!isUtf8(target)) {
          throw new EngineError('LAYER_UNSUPPORTED', `write layer tar: ${rel}: symlink target is not valid UTF-8`, { userError: true });
        }
        header.type = 'symlink';
        header.linkname = target.toString('utf8');
        await addEntry(this.pack, header);
        return;
      }
      case fsc.S_IFCHR:
      case fsc.S_IFBLK:
        header.type = format === fsc.S_IFCHR ? 'character-device' : 'block-device';
        header.devmajor = major(st.rdev);
        header.devminor = minor(st.rdev);
        await addEntry(this.pack, header);
        return;
      case fsc.S_IFIFO:
        header.type = 'fifo';
        await addEntry(this.pack, header);
        return;
      default:
        throw new EngineError('LAYER_UNSUPPORTED', `write layer tar: ${rel}: unknown file type 0o${format.toString(8)}`);
    }
  }

  private setTime(header: PackHeader, seconds: number): void {
    const t = this.epoch !== undefined && seconds > this.epoch ? this.epoch : seconds;
    if (t < 0 || t > MAX_USTAR_TIME) {
      header.pax = { ...header.pax, mtime: String(t) };
      header.mtime = new Date(t < 0 ? 0 : MAX_USTAR_TIME * 1000);
    } else {
      header.mtime = new Date(t * 1000);
    }
  }

  private setIds(header: PackHeader): void {
    if (header.uid! > MAX_USTAR_ID) {
      header.pax = { ...header.pax, uid: String(header.uid) };
      header.uid = MAX_USTAR_ID;
    }
    if (header.gid! > MAX_USTAR_ID) {
      header.pax = { ...header.pax, gid: String(header.gid) };
      header.gid = MAX_USTAR_ID;
    }
  }

  private setXattrs(header: PackHeader, rel: string, attrs: Xattrs | undefined): void {
    if (attrs === undefined) return;
    // The kernel's own bookkeeping (uuid, origin, impure, opaque, redirect…) describes this
    // host's overlay mount, not the image: never part of a layer. Opaque becomes a marker.
    const names = [...attrs.keys()]
      .filter((n) => !n.startsWith(OVERLAY_XATTR_PREFIX))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const n of names) {
      const value = attrs.get(n)!;
      // pax records hold strings that tar-stream encodes as UTF-8; a name with '=' cannot be
      // parsed back. Refuse rather than write a tar that decodes to something else.
      if (n.includes('=') || !isUtf8(value)) {
        throw new EngineError(
          'LAYER_UNSUPPORTED',
          `write layer tar: ${rel}: xattr ${n}: ${n.includes('=') ? "name contains '='" : 'binary value is not valid UTF-8'}`,
          { userError: true },
        );
      }
      header.pax = { ...header.pax, [`SCHILY.xattr.${n}`]: value.toString('utf8') };
    }
  }
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

/** Adds an entry without a body, or with a small in-memory one; resolves once it is queued. */
function addEntry(pack: Pack, header: PackHeader, body?: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cb = (err?: Error | null) => (err ? reject(err) : resolve());
    const sink = body === undefined ? pack.entry(header, cb) : pack.entry(header, body, cb);
    sink.on('error', noop);
  });
}

/** Streams a regular file into the tar, waiting for the consumer whenever the pack is full. */
async function addFileEntry(pack: Pack, header: PackHeader, host: string): Promise<void> {
  const size = header.size ?? 0;
  if (size === 0) return addEntry(pack, header, Buffer.alloc(0));
  let sink!: Sink;
  const done = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
  done.catch(noop); // awaited below; this only keeps an early failure from going unhandled
  sink.on('error', noop);
  try {
    // O_NOFOLLOW: the path was lstat'ed as a regular file; never read through a swapped-in link.
    const fh = await fs.open(host, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    const file = fh.createReadStream({ start: 0, end: size - 1, highWaterMark: 1 << 20 }); // closes fh when done
    for await (const chunk of file) {
      if (!sink.write(chunk)) await drained(sink, () => new EngineError('LAYER_TAR_FAILED', 'write layer tar: tar stream closed while writing'));
    }
    sink.end(undefined);
  } catch (err) {
    sink.destroy(err as Error);
    throw err;
  }
  try {
    await done;
  } catch (err) {
    // tar-stream's "Size mismatch": the file shrank between lstat and read.
    throw new EngineError('LAYER_TAR_FAILED', `write layer tar: ${header.name}: ${(err as Error).message}`, { cause: err });
  }
}


function noop(): void {}
