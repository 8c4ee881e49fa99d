// The tar format, POSIX ustar with pax extended headers, written and read with names, link
// targets and pax values as bytes. tar-stream carries those as UTF-8 strings, which cannot
// hold a binary xattr such as security.capability (struct vfs_cap_data).
//
// Writing follows the layout tar-stream's pack() gave our layer tars, byte for byte: layer
// snapshots are hashed again at save and must give the diff_id they were committed with.
// Reading takes ustar, pax ('x' and 'g'), GNU ('L', 'K', base-256 numbers) and v7 headers.
// Format: https://pubs.opengroup.org/onlinepubs/9799919799/utilities/pax.html
import { isUtf8 } from 'node:buffer';
import type { Readable } from 'node:stream';
import { EngineError } from '../errors.js';

export type EntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'contiguous-file';

/** One entry to write. Names and link targets are bytes: any name Linux allows. */
export interface EntryHeader {
  /** Relative, a directory's ending in '/'. */
  name: Buffer;
  type: EntryType;
  /** Permission bits with setuid, setgid and sticky; file type bits are ignored. */
  mode: number;
  uid: number;
  gid: number;
  /** Body bytes that follow: 0 for every type without a body. */
  size: number;
  /** Whole seconds since the epoch, before 1970 or beyond 2038 included. */
  mtime: number;
  linkname?: Buffer;
  devmajor?: number;
  devminor?: number;
}

/** A pax record: key and raw value bytes. */
export type PaxRecord = readonly [key: string, value: Buffer];

/** An entry as read: names decoded, pax path, linkpath, size, ids and mtime applied. */
export interface TarHeader {
  name: string;
  /** null: a typeflag this reader does not know (GNU sparse, multi-volume…). */
  type: EntryType | null;
  /** The typeflag as written, for naming a type that `type` cannot. */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  /** Body bytes: 0 for types that never have a body, whatever the header says. */
  size: number;
  mtime: Date;
  /** '' when the entry has none. */
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

export interface TarEntry {
  header: TarHeader;
  /** Every pax record that applies, global ones included, values as raw bytes. */
  pax: Map<string, Buffer>;
  /** The file's bytes; what is left unread is skipped when the next entry is asked for. */
  body: AsyncIterable<Buffer>;
}

const BLOCK = 512;
const USTAR_MAGIC = Buffer.from('ustar\x0000', 'latin1');
const GNU_MAGIC = Buffer.from('ustar  \x00', 'latin1');
const PAX_STAND_IN = Buffer.from('PaxHeader');
const NAME_FIELD = 100;
const PREFIX_FIELD = 155;
// What tar-stream wrote in the header fields (uid and gid in 6 octal digits, mtime through a
// 32-bit int); beyond that the value goes into a pax record and the field gets a stand-in.
const MAX_HEADER_ID = 0o777777;
const MAX_HEADER_TIME = 0x7fffffff;
/** ECMAScript dates reach 100 million days either side of 1970. */
const MAX_DATE_SECONDS = 8.64e12;
/** Longest pax or GNU long-name body read into memory (Go's archive/tar allows as much). */
const MAX_EXTENDED_HEADER = 1 << 20;
// A compressed archive of a few hundred KB can hold gigabytes of pax records: those in force
// are bounded in count and bytes (keys and values), for one entry (every `x` header before
// it) and globally (`g` headers, copied into each entry's records). Linux keeps at most 64 KB
// of xattrs per file, so real archives stay far below.
export const MAX_PAX_RECORDS = 10_000;
export const MAX_PAX_BYTES = 1 << 20;
export const MAX_GLOBAL_PAX_RECORDS = 1_000;
export const MAX_GLOBAL_PAX_BYTES = 256 * 1024;
/** A GNU long name or link target (`L`, `K`): far above PATH_MAX. */
export const MAX_LONG_NAME = 64 * 1024;

const TYPEFLAGS: Record<EntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
  'contiguous-file': '7',
};
const TYPES = new Map<string, EntryType>(Object.entries(TYPEFLAGS).map(([type, flag]) => [flag, type as EntryType]));
// POSIX: no data follows these, whatever the size field holds (Go's reader agrees).
const HEADER_ONLY = new Set<EntryType>(['link', 'symlink', 'character-device', 'block-device', 'directory', 'fifo']);

// ---- writing -------------------------------------------------------------------------------

/**
 * The header blocks of one entry: its ustar header, preceded by a pax header ('x') when
 * the name or link target does not fit the fixed fields, is not ASCII (names) or not UTF-8
 * (targets), when an id or the mtime is beyond its field, or when `extra` has records.
 */
export function encodeEntryHeader(h: EntryHeader, extra: readonly PaxRecord[] = []): Buffer {
  const records: PaxRecord[] = [];
  let { mtime, uid, gid } = h;
  if (mtime < 0 || mtime > MAX_HEADER_TIME) {
    records.push(['mtime', Buffer.from(String(mtime))]);
    mtime = mtime < 0 ? 0 : MAX_HEADER_TIME;
  }
  if (uid > MAX_HEADER_ID) {
    records.push(['uid', Buffer.from(String(uid))]);
    uid = MAX_HEADER_ID;
  }
  if (gid > MAX_HEADER_ID) {
    records.push(['gid', Buffer.from(String(gid))]);
    gid = MAX_HEADER_ID;
  }
  records.push(...extra);
  const linkname = h.linkname ?? Buffer.alloc(0);
  const fields = { mode: h.mode, uid, gid, mtime, devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0 };
  const typeflag = TYPEFLAGS[h.type];

  const split = splitName(h.name);
  const linkFits = linkname.length <= NAME_FIELD && isUtf8(linkname);
  if (records.length === 0 && split !== undefined && linkFits) {
    return ustarHeader({ ...fields, ...split, typeflag, size: h.size, linkname });
  }
  // tar-stream's layout: path (and linkpath) always lead the records, and both headers carry
  // the same stand-in name, so the bytes depend on nothing but the entry. A name that is
  // not UTF-8 goes in as its bytes, as GNU tar writes one; no hdrcharset=BINARY, which GNU
  // tar warns about and Go and Python do not need.
  const named: PaxRecord[] = [['path', h.name]];
  if (linkname.length > 0) named.push(['linkpath', linkname]);
  const pax = encodePaxRecords([...named, ...records]);
  const standIn = { ...fields, name: PAX_STAND_IN, prefix: Buffer.alloc(0), linkname: linkname.length > 0 ? PAX_STAND_IN : linkname };
  return Buffer.concat([ustarHeader({ ...standIn, typeflag: 'x', size: pax.length }), pax, blockPadding(pax.length), ustarHeader({ ...standIn, typeflag, size: h.size })]);
}

/** The zeros that complete a body of `size` bytes to whole blocks. */
export function blockPadding(size: number): Buffer {
  return Buffer.alloc(paddingSize(size));
}

/** The two zero blocks that end an archive. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}

function paddingSize(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** `"%d key=value\n"` records, the length counting its own digits; values are raw bytes. */
export function encodePaxRecords(records: readonly PaxRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const rest = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
    let total = rest.length + String(rest.length).length;
    if (String(total).length !== String(total - rest.length).length) total = rest.length + String(total).length;
    parts.push(Buffer.from(String(total)), rest);
  }
  return Buffer.concat(parts);
}

/**
 * An ASCII name as ustar's name and prefix fields: whole as name when it fits, else split at
 * the first '/' that leaves at most 100 bytes (tar-stream's choice). undefined: pax only.
 */
function splitName(name: Buffer): { name: Buffer; prefix: Buffer } | undefined {
  if (name.some((c) => c >= 0x80)) return undefined;
  if (name.length <= NAME_FIELD) return { name, prefix: Buffer.alloc(0) };
  for (let slash = name.indexOf(0x2f); slash >= 0; slash = name.indexOf(0x2f, slash + 1)) {
    if (slash > PREFIX_FIELD) return undefined;
    if (name.length - slash - 1 <= NAME_FIELD) return { name: name.subarray(slash + 1), prefix: name.subarray(0, slash) };
  }
  return undefined;
}

interface UstarFields {
  name: Buffer;
  prefix: Buffer;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
}

function ustarHeader(f: UstarFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  f.name.copy(b, 0);
  writeNumber(b, 100, 8, f.mode & 0o7777);
  writeNumber(b, 108, 8, f.uid);
  writeNumber(b, 116, 8, f.gid);
  writeNumber(b, 124, 12, f.size);
  writeNumber(b, 136, 12, f.mtime);
  b.write(f.typeflag, 156, 'latin1');
  f.linkname.copy(b, 157);
  USTAR_MAGIC.copy(b, 257);
  writeNumber(b, 329, 8, f.devmajor);
  writeNumber(b, 337, 8, f.devminor);
  f.prefix.copy(b, 345);
  // Summed with the checksum field as spaces; written, like tar-stream, as 6 digits, space, NUL.
  b.write(`${checksums(b).unsigned.toString(8).padStart(6, '0')} \0`, 148, 'latin1');
  return b;
}

/**
 * A numeric field: octal digits and a space, as tar-stream wrote them (6 digits in the
 * 8-byte fields, 11 in the 12-byte ones); a value too large for that in base 256 (GNU).
 */
function writeNumber(b: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  const width = length === 8 ? 6 : 11;
  if (digits.length <= width) {
    b.write(`${digits.padStart(width, '0')} `, offset, 'latin1');
    return;
  }
  let v = BigInt(value);
  for (let i = offset + length - 1; i > offset; i--, v >>= 8n) b[i] = Number(v & 0xffn);
  b[offset] = 0x80;
}

// ---- reading -------------------------------------------------------------------------------

/**
 * The entries of the tar read from `src`, streaming: a body is never held in memory and
 * `src` is read only as fast as entries and bodies are consumed. Ends at two zero blocks (or
 * one, or none, then the end of `src`) and reads `src` to its end, as a digest of it may be
 * wanted; stopping early destroys `src`. Throws EngineError TAR_INVALID on a damaged or
 * truncated archive and TAR_UNSUPPORTED on a name or link target that is not UTF-8, which
 * a string cannot carry.
 */
export async function* readTar(src: Readable): AsyncGenerator<TarEntry, void, undefined> {
  const chunks = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const bytes = new ByteSource(chunks);
  let complete = false;
  try {
    const globals = new PaxRecords(MAX_GLOBAL_PAX_RECORDS, MAX_GLOBAL_PAX_BYTES, 'global');
    let local = new PaxRecords(MAX_PAX_RECORDS, MAX_PAX_BYTES, 'entry');
    // Each entry gets its own map of the records in force; without local ones it is a copy of
    // the globals made once per change of them, not once per entry.
    let globalsCopy: Map<string, Buffer> | undefined;
    let longName: Buffer | undefined;
    let longLink: Buffer | undefined;
    for (;;) {
      const at = bytes.offset;
      const block = await readHeaderBlock(bytes);
      if (block === undefined) {
        const pending = local.size > 0 || longName !== undefined || longLink !== undefined;
        if (pending) throw invalid(at, 'the archive ends after an extended header');
        break;
      }
      const raw = decodeHeader(block, at);
      switch (raw.typeflag) {
        case 'x':
          for (const [k, v] of parsePax(await readExtended(bytes, raw, at), at)) local.set(k, v, at);
          continue;
        case 'g':
          for (const [k, v] of parsePax(await readExtended(bytes, raw, at), at)) {
            if (v.length === 0) globals.delete(k);
            else globals.set(k, v, at);
          }
          globalsCopy = undefined;
          continue;
        case 'L':
          longName = cString(await readExtended(bytes, raw, at, MAX_LONG_NAME));
          continue;
        case 'K':
          longLink = cString(await readExtended(bytes, raw, at, MAX_LONG_NAME));
          continue;
      }
      const pax = local.size === 0 ? new Map((globalsCopy ??= new Map(globals.map))) : new Map([...globals.map, ...local.map]);
      const header = entryHeader(raw, pax, longName, longLink, at);
      local = new PaxRecords(MAX_PAX_RECORDS, MAX_PAX_BYTES, 'entry');
      longName = longLink = undefined;
      const body = new Body(bytes, header.size, at);
      yield { header, pax, body };
      await body.skipRest();
      await bytes.skip(paddingSize(header.size), at);
    }
    while ((await bytes.take(Infinity)) !== undefined) {
      // Past the end of the archive (GNU tar pads to 10 KiB records): consumed, not looked at.
    }
    complete = true;
  } finally {
    if (!complete) await chunks.return?.();
  }
}

/** A name or link target quoted for a message; when it is not UTF-8, other bytes than printable ASCII as \xNN. */
export function printable(b: Buffer): string {
  if (isUtf8(b)) return JSON.stringify(b.toString('utf8'));
  let s = '';
  for (const c of b) {
    const plain = c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c;
    s += plain ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return `"${s}"`;
}

/** The bytes of a Readable, taken in pieces of at most the size asked for. */
class ByteSource {
  /** Bytes consumed so far: where errors say they are. */
  offset = 0;
  private pending: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(private readonly chunks: AsyncIterator<Buffer>) {}

  /** At least one byte and at most `max`; undefined at the end of the source. */
  async take(max: number): Promise<Buffer | undefined> {
    while (this.pending.length === 0) {
      if (this.ended) return undefined;
      const next = await this.chunks.next();
      if (next.done) this.ended = true;
      else this.pending = next.value;
    }
    const out = this.pending.subarray(0, max);
    this.pending = this.pending.subarray(out.length);
    this.offset += out.length;
    return out;
  }

  /** Exactly `n` bytes; undefined when the source ends before the first of them. */
  async exactly(n: number, entryAt: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const part = await this.take(n - got);
      if (part === undefined) {
        if (got === 0) return undefined;
        throw truncated(entryAt);
      }
      parts.push(part);
      got += part.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, n);
  }

  async skip(n: number, entryAt: number): Promise<void> {
    for (let left = n; left > 0;) {
      const part = await this.take(left);
      if (part === undefined) throw truncated(entryAt);
      left -= part.length;
    }
  }
}

class Body implements AsyncIterable<Buffer> {
  constructor(
    private readonly bytes: ByteSource,
    private left: number,
    private readonly entryAt: number,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    while (this.left > 0) {
      const part = await this.bytes.take(this.left);
      if (part === undefined) throw truncated(this.entryAt);
      this.left -= part.length;
      yield part;
    }
  }

  async skipRest(): Promise<void> {
    const left = this.left;
    this.left = 0;
    await this.bytes.skip(left, this.entryAt);
  }
}

/** The next header block; undefined at the end of the archive. */
async function readHeaderBlock(bytes: ByteSource): Promise<Buffer | undefined> {
  const at = bytes.offset;
  const block = await bytes.exactly(BLOCK, at);
  if (block === undefined || !isZero(block)) return block;
  const second = await bytes.exactly(BLOCK, at);
  if (second === undefined || isZero(second)) return undefined;
  throw invalid(at, 'a zero block is followed by more entries');
}

interface RawHeader {
  typeflag: string;
  name: Buffer;
  linkname: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  uname: Buffer;
  gname: Buffer;
  devmajor: number;
  devminor: number;
}

function decodeHeader(b: Buffer, at: number): RawHeader {
  const digits = octalDigits(b.subarray(148, 156));
  const stored = /^[0-7]+$/.test(digits) ? parseInt(digits, 8) : NaN;
  const sums = checksums(b);
  if (stored !== sums.unsigned && stored !== sums.signed) {
    throw invalid(at, 'header checksum mismatch: not a tar archive (a compressed one?) or a damaged one');
  }
  const magic = b.subarray(257, 265);
  const ustar = magic.subarray(0, 6).equals(USTAR_MAGIC.subarray(0, 6));
  // Old GNU tar ("ustar  \0") keeps access and change times where ustar has the prefix.
  const extended = ustar || magic.equals(GNU_MAGIC);
  let name = cString(b.subarray(0, 100));
  const prefix = ustar ? cString(b.subarray(345, 500)) : Buffer.alloc(0);
  if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  return {
    typeflag: String.fromCharCode(b[156]!),
    name,
    linkname: cString(b.subarray(157, 257)),
    mode: readNumber(b, 100, 8, 'mode', at),
    uid: readNumber(b, 108, 8, 'uid', at),
    gid: readNumber(b, 116, 8, 'gid', at),
    size: readNumber(b, 124, 12, 'size', at),
    mtime: readNumber(b, 136, 12, 'mtime', at),
    uname: extended ? cString(b.subarray(265, 297)) : Buffer.alloc(0),
    gname: extended ? cString(b.subarray(297, 329)) : Buffer.alloc(0),
    devmajor: extended ? readNumber(b, 329, 8, 'devmajor', at) : 0,
    devminor: extended ? readNumber(b, 337, 8, 'devminor', at) : 0,
  };
}

function entryHeader(raw: RawHeader, pax: Map<string, Buffer>, longName: Buffer | undefined, longLink: Buffer | undefined, at: number): TarHeader {
  const nameBytes = paxValue(pax, 'path') ?? longName ?? raw.name;
  const linkBytes = paxValue(pax, 'linkpath') ?? longLink ?? raw.linkname;
  for (const [what, value] of [
    ['name', nameBytes],
    ['link target', linkBytes],
  ] as const) {
    if (value.includes(0)) throw invalid(at, `${what} ${printable(value)} holds a NUL byte`);
    if (!isUtf8(value)) {
      throw new EngineError('TAR_UNSUPPORTED', `read tar: entry at byte ${at}: ${what} ${printable(value)} is not valid UTF-8`, {
        userError: true,
      });
    }
  }
  const name = nameBytes.toString('utf8');
  // A pax sparse file looks like a regular one whose body is a map and the data blocks:
  // written out as is it would be a corrupt file, not an error.
  if ([...pax.keys()].some((k) => k.startsWith('GNU.sparse.'))) {
    const detail = `${JSON.stringify(name)} is a GNU sparse file, which is not supported`;
    throw new EngineError('TAR_UNSUPPORTED', `read tar: entry at byte ${at}: ${detail}`, { userError: true });
  }
  let type = raw.typeflag === '\0' ? 'file' : (TYPES.get(raw.typeflag) ?? null);
  // Before ustar a trailing slash was what marked a directory.
  if (type === 'file' && name.endsWith('/')) type = 'directory';
  const size = type !== null && HEADER_ONLY.has(type) ? 0 : (paxNumber(pax, 'size', at) ?? raw.size);
  if (size < 0) throw invalid(at, `negative size ${size}`);
  const mtime = paxTime(pax, at) ?? raw.mtime;
  if (Math.abs(mtime) > MAX_DATE_SECONDS) throw invalid(at, `mtime ${mtime} is beyond what a date can hold`);
  return {
    name,
    type,
    typeflag: raw.typeflag,
    mode: raw.mode,
    uid: paxNumber(pax, 'uid', at) ?? raw.uid,
    gid: paxNumber(pax, 'gid', at) ?? raw.gid,
    size,
    mtime: new Date(mtime * 1000),
    linkname: linkBytes.toString('utf8'),
    uname: (paxValue(pax, 'uname') ?? raw.uname).toString('utf8'),
    gname: (paxValue(pax, 'gname') ?? raw.gname).toString('utf8'),
    devmajor: raw.devmajor,
    devminor: raw.devminor,
  };
}

/** The body of a pax or GNU long-name header, which is read into memory and so bounded. */
async function readExtended(bytes: ByteSource, raw: RawHeader, at: number, max = MAX_EXTENDED_HEADER): Promise<Buffer> {
  if (raw.size > max) {
    throw new EngineError('TAR_UNSUPPORTED', `read tar: entry at byte ${at}: extended header of ${raw.size} bytes, more than the ${max} read`, {
      userError: true,
    });
  }
  const body = await bytes.exactly(raw.size, at);
  if (body === undefined) throw truncated(at);
  await bytes.skip(paddingSize(raw.size), at);
  return body;
}

/** Records `"%d key=value\n"`; values are copied out, so they do not pin the source's chunks. */
function parsePax(data: Buffer, at: number): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  for (let off = 0; off < data.length;) {
    if (records.size >= MAX_PAX_RECORDS) throw tooMany(at, `more than ${MAX_PAX_RECORDS} pax records in one header`);
    const space = data.indexOf(0x20, off);
    const digits = space < 0 ? '' : data.toString('latin1', off, space);
    const end = off + Number(digits);
    const eq = data.indexOf(0x3d, space);
    if (!/^[1-9]\d*$/.test(digits) || end > data.length || data[end - 1] !== 0x0a || eq < 0 || eq >= end) {
      throw invalid(at, `malformed pax record at byte ${off} of its extended header`);
    }
    const key = data.subarray(space + 1, eq);
    if (key.length === 0 || !isUtf8(key)) throw invalid(at, `pax record key ${printable(key)} is empty or not UTF-8`);
    records.set(key.toString('utf8'), Buffer.from(data.subarray(eq + 1, end - 1)));
    off = end;
  }
  return records;
}

/** Pax records in force, counted as they are set: past the limits the archive is refused. */
class PaxRecords {
  readonly map = new Map<string, Buffer>();
  private bytes = 0;
  constructor(
    private readonly maxRecords: number,
    private readonly maxBytes: number,
    private readonly what: 'entry' | 'global',
  ) {}

  get size(): number {
    return this.map.size;
  }

  set(key: string, value: Buffer, at: number): void {
    this.delete(key);
    this.map.set(key, value);
    this.bytes += key.length + value.length;
    if (this.map.size > this.maxRecords) throw tooMany(at, `more than ${this.maxRecords} ${this.what} pax records`);
    if (this.bytes > this.maxBytes) throw tooMany(at, `${this.what} pax records of more than ${this.maxBytes} bytes`);
  }

  delete(key: string): void {
    const old = this.map.get(key);
    if (old === undefined) return;
    this.bytes -= key.length + old.length;
    this.map.delete(key);
  }
}

function tooMany(at: number, detail: string): EngineError {
  return new EngineError('TAR_LIMIT', `read tar: entry at byte ${at}: ${detail} (strata's limit)`, { userError: true });
}

/** A record that overrides a header field; an empty value leaves the field in force (POSIX). */
function paxValue(pax: Map<string, Buffer>, key: string): Buffer | undefined {
  const v = pax.get(key);
  return v === undefined || v.length === 0 ? undefined : v;
}

function paxNumber(pax: Map<string, Buffer>, key: string, at: number): number | undefined {
  const v = paxValue(pax, key)?.toString('latin1');
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw invalid(at, `pax ${key} ${JSON.stringify(v)} is not a number`);
  return n;
}

/** Seconds, with a fraction and before 1970 allowed. */
function paxTime(pax: Map<string, Buffer>, at: number): number | undefined {
  const v = paxValue(pax, 'mtime')?.toString('latin1');
  if (v === undefined) return undefined;
  if (!/^-?\d+(\.\d+)?$/.test(v)) throw invalid(at, `pax mtime ${JSON.stringify(v)} is not a time`);
  return Number(v);
}

/**
 * A numeric field: octal digits between optional spaces and NULs, or base 256 (two's
 * complement) when the first byte has its high bit set, as GNU tar writes large values.
 */
function readNumber(b: Buffer, offset: number, length: number, field: string, at: number): number {
  const f = b.subarray(offset, offset + length);
  let n: number;
  if (f[0]! & 0x80) {
    const negative = (f[0]! & 0x40) !== 0;
    let v = 0n;
    for (let i = 0; i < f.length; i++) {
      const c = negative ? ~f[i]! & 0xff : f[i]!;
      v = (v << 8n) | BigInt(i === 0 ? c & 0x7f : c);
    }
    n = Number(negative ? -v - 1n : v);
    if (!Number.isSafeInteger(n)) throw invalid(at, `header field ${field} is out of range`);
    return n;
  }
  const digits = octalDigits(f);
  if (digits === '') return 0;
  if (!/^[0-7]+$/.test(digits)) throw invalid(at, `header field ${field} holds ${JSON.stringify(digits)}, not an octal number`);
  n = parseInt(digits, 8);
  if (!Number.isSafeInteger(n)) throw invalid(at, `header field ${field} is out of range`);
  return n;
}

/** An octal field's digits, without the spaces and NULs writers put around them. */
function octalDigits(f: Buffer): string {
  return f.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
}

/** The header's sum with the checksum field as spaces, bytes taken unsigned and (as some old tars did) signed. */
function checksums(b: Buffer): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += c;
    signed += c >= 0x80 ? c - 0x100 : c;
  }
  return { unsigned, signed };
}

function cString(b: Buffer): Buffer {
  const nul = b.indexOf(0);
  return nul < 0 ? b : b.subarray(0, nul);
}

function isZero(b: Buffer): boolean {
  for (const c of b) if (c !== 0) return false;
  return true;
}

function invalid(at: number, detail: string): EngineError {
  return new EngineError('TAR_INVALID', `read tar: entry at byte ${at}: ${detail}`, { userError: true });
}

function truncated(at: number): EngineError {
  return invalid(at, 'the archive is truncated');
}
