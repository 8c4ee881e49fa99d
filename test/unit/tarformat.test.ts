// The tar format module: round trips through our writer and reader, what GNU tar and
// Python's tarfile make of what we write, what we make of what GNU tar writes, streaming,
// and damaged archives.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { readXattrsTree } from '../../engine/fsutil/special.js';
import { blockPadding, encodeEntryHeader, encodePaxRecords, endOfArchive, readTar, type EntryHeader, type PaxRecord } from '../../engine/tar/tarformat.js';

// ---- helpers ------------------------------------------------------------------------------

interface Written {
  header: Partial<EntryHeader> & { name: Buffer };
  records?: PaxRecord[];
  body?: Buffer;
}

const T = 1_600_000_000;

/** A plain empty file's header, `extra` changing what a test is about. */
function fileHeader(name: string, extra: Partial<EntryHeader> = {}): EntryHeader {
  return { name: Buffer.from(name), type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: T, ...extra };
}

function tarOf(entries: Written[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const body = e.body ?? Buffer.alloc(0);
    const header: EntryHeader = { ...fileHeader(''), size: body.length, ...e.header };
    parts.push(encodeEntryHeader(header, e.records), body, blockPadding(body.length));
  }
  parts.push(endOfArchive());
  return Buffer.concat(parts);
}

/** An entry as the tests compare it: what a reader may be expected to give back. */
interface Seen {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  body: string;
  /** xattr name → value in hex. */
  xattrs: Record<string, string>;
}

const XATTR = 'SCHILY.xattr.';

function writtenAsSeen(e: Written): Seen {
  const h = e.header;
  return {
    name: h.name.toString(),
    type: h.type ?? 'file',
    mode: h.mode ?? 0o644,
    uid: h.uid ?? 0,
    gid: h.gid ?? 0,
    mtime: h.mtime ?? T,
    linkname: h.linkname?.toString() ?? '',
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
    body: (e.body ?? Buffer.alloc(0)).toString('hex'),
    xattrs: Object.fromEntries((e.records ?? []).map(([k, v]) => [k.slice(XATTR.length), v.toString('hex')])),
  };
}

async function readSeen(src: Readable): Promise<Seen[]> {
  const out: Seen[] = [];
  for await (const { header: h, pax, body } of readTar(src)) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c);
    out.push({
      name: h.name,
      type: h.type ?? `typeflag ${h.typeflag}`,
      mode: h.mode & 0o7777,
      uid: h.uid,
      gid: h.gid,
      mtime: Math.floor(h.mtime.getTime() / 1000),
      linkname: h.linkname,
      devmajor: h.devmajor,
      devminor: h.devminor,
      body: Buffer.concat(chunks).toString('hex'),
      xattrs: Object.fromEntries([...pax].filter(([k]) => k.startsWith(XATTR)).map(([k, v]) => [k.slice(XATTR.length), v.toString('hex')])),
    });
  }
  return out;
}

async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'strata-tarformat-'));
}

/** `tar` split into pieces of 1 to 7 bytes, as the worst network stream would deliver it. */
function dribble(tar: Buffer): Readable {
  const pieces: Buffer[] = [];
  for (let i = 0, n = 1; i < tar.length; i += n, n = (n % 7) + 1) pieces.push(tar.subarray(i, i + n));
  return Readable.from(pieces);
}

/** Sets the checksum of the header block at `offset` after a test changed it. */
function fixChecksum(tar: Buffer, offset = 0): void {
  tar.fill(0x20, offset + 148, offset + 156);
  let sum = 0;
  for (let i = offset; i < offset + 512; i++) sum += tar[i]!;
  tar.write(sum.toString(8).padStart(6, '0') + ' \0', offset + 148, 'latin1');
}

async function hasPython(): Promise<boolean> {
  return execa('python3', ['--version']).then(
    () => true,
    () => false,
  );
}

// Every byte value, so no decoding of it as text survives.
const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
// VFS_CAP_REVISION_2 with the effective flag: cap_setgid and cap_net_bind_service (0x80 is no UTF-8).
const CAPABILITY = Buffer.from('0100000280040000000000000000000000000000', 'hex');

/** Entries that reach every layout the writer has. */
const HARD: Written[] = [
  { header: { name: Buffer.from('short'), mode: 0o4755 }, body: Buffer.from('hello\n') },
  { header: { name: Buffer.from('dir/'), type: 'directory', mode: 0o1777 } },
  { header: { name: Buffer.from(`${'d'.repeat(80)}/${'f'.repeat(60)}`) }, body: Buffer.from('split into prefix and name') },
  { header: { name: Buffer.from('n'.repeat(101)) }, body: Buffer.from('101 bytes and no slash to split at') },
  { header: { name: Buffer.from(['a', 'b', 'c'].map((c) => c.repeat(100)).join('/')) }, body: Buffer.from('302 bytes') },
  { header: { name: Buffer.from('long-target'), type: 'symlink', mode: 0o777, linkname: Buffer.from('t'.repeat(300)) } },
  { header: { name: Buffer.from('hard'), type: 'link', linkname: Buffer.from('n'.repeat(101)) } },
  { header: { name: Buffer.from('ids'), uid: 3_000_000, gid: 4_294_967_294 } },
  { header: { name: Buffer.from('before-1970'), mtime: -86_401 } },
  { header: { name: Buffer.from('after-2038'), mtime: 2 ** 33 } },
  {
    header: { name: Buffer.from('xattrs') },
    records: [
      ['SCHILY.xattr.security.capability', CAPABILITY],
      ['SCHILY.xattr.user.bin', BINARY],
      ['SCHILY.xattr.user.empty', Buffer.alloc(0)],
    ],
    body: BINARY,
  },
  { header: { name: Buffer.from('null'), type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 } },
  { header: { name: Buffer.from('big-minor'), type: 'block-device', mode: 0o660, devmajor: 4095, devminor: 1_048_575 } },
  { header: { name: Buffer.from('fifo'), type: 'fifo', mode: 0o600 } },
  { header: { name: Buffer.from('名前/ü') }, body: Buffer.from('a UTF-8 name') },
  { header: { name: Buffer.from('large'), mtime: T + 1 }, body: Buffer.alloc(3 * 512 + 1, 'L') },
];

// ---- our writer, our reader ---------------------------------------------------------------

describe('tar format round trip', () => {
  test('what we write we read back, whole or in pieces of a few bytes', async () => {
    const tar = tarOf(HARD);
    const expected = HARD.map(writtenAsSeen);
    expect(await readSeen(Readable.from([tar]))).toEqual(expected);
    expect(await readSeen(dribble(tar))).toEqual(expected);
  });

  test('header layout: ustar fields when they suffice, a pax header before the entry otherwise', () => {
    const plain = encodeEntryHeader(fileHeader('a/b', { uid: 1, gid: 2, size: 5 }));
    expect(plain.length).toBe(512);
    expect(plain.toString('latin1', 257, 265)).toBe('ustar\x0000');
    expect(plain.toString('latin1', 100, 108)).toBe('000644 \0');
    expect(plain.toString('latin1', 124, 136)).toBe('00000000005 ');

    const split = encodeEntryHeader(fileHeader(`${'p'.repeat(150)}/${'n'.repeat(100)}`));
    expect(split.length).toBe(512);
    expect(split.toString('latin1', 345, 346 + 150).replace(/\0+$/, '')).toBe('p'.repeat(150));

    const withPax = encodeEntryHeader(fileHeader('x'), [['SCHILY.xattr.user.a', BINARY]]);
    expect(withPax.length).toBe(3 * 512); // 'x' header, 290 bytes of records padded, then the entry
    expect(String.fromCharCode(withPax[156]!)).toBe('x');
    expect(withPax.toString('latin1', 512, 521)).toBe('9 path=x\n');
    expect(withPax.toString('latin1', 0, 9)).toBe('PaxHeader');
    expect(withPax.toString('latin1', 1024, 1033)).toBe('PaxHeader');
  });

  test('pax records count their own length, digits included', () => {
    expect(encodePaxRecords([['k', Buffer.from('v')]]).toString()).toBe('6 k=v\n');
    // 9 bytes without the length, 10 with one digit: so two digits, 11 bytes in all.
    expect(encodePaxRecords([['k', Buffer.from('vvvvv')]]).toString()).toBe('11 k=vvvvv\n');
    for (let n = 80; n < 1100; n++) {
      const record = encodePaxRecords([['k', Buffer.alloc(n, 'v')]]);
      expect(Number(record.toString('latin1', 0, record.indexOf(0x20)))).toBe(record.length);
    }
  });
});

// ---- what others make of what we write ---------------------------------------------------

describe('other tools read what we write', () => {
  let work: string;
  beforeEach(async () => {
    work = await tempDir();
  });
  afterEach(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  test('GNU tar lists and extracts it: names, targets, ids, times, devices, binary xattrs', async () => {
    const tar = tarOf(HARD);
    const listing = await execa('tar', ['-tf', '-'], { input: tar });
    expect(listing.stdout.split('\n')).toEqual(HARD.map((e) => e.header.name.toString()));

    await execa('tar', ['--xattrs', '--xattrs-include=*', '--same-owner', '-xpf', '-', '-C', work], { input: tar });
    const attrs = await readXattrsTree(work);
    for (const e of HARD) {
      const expected = writtenAsSeen(e);
      const p = path.join(work, expected.name);
      const st = await fs.lstat(p);
      const seen = {
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
        linkname: st.isSymbolicLink() ? await fs.readlink(p) : '',
        devmajor: st.isCharacterDevice() || st.isBlockDevice() ? Math.floor(st.rdev / 256) & 0xfff : 0,
        body: st.isFile() ? (await fs.readFile(p)).toString('hex') : '',
        xattrs: Object.fromEntries([...(attrs.get(expected.name.replace(/\/$/, '')) ?? [])].map(([k, v]) => [k, v.toString('hex')])),
      };
      expect({ name: expected.name, ...seen }).toEqual({
        name: expected.name,
        mode: expected.type === 'symlink' ? 0o777 : expected.mode,
        uid: expected.uid,
        gid: expected.gid,
        mtime: expected.type === 'link' ? T : expected.mtime, // a hardlink shares its target's inode
        linkname: expected.type === 'symlink' ? expected.linkname : '',
        devmajor: expected.devmajor,
        body: expected.type === 'link' ? Buffer.from('101 bytes and no slash to split at').toString('hex') : expected.body,
        xattrs: expected.xattrs,
      });
    }
    const { rdev } = await fs.lstat(path.join(work, 'big-minor'), { bigint: true });
    expect((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)).toBe(1_048_575n);
    expect((await fs.lstat(path.join(work, 'hard'))).ino).toBe((await fs.lstat(path.join(work, 'n'.repeat(101)))).ino);
  });

  test("Python's tarfile reads it: names, targets, ids, times, devices, binary xattrs", async () => {
    if (!(await hasPython())) return;
    const script = `
import json, sys, tarfile
raw = lambda s: s.encode('utf-8', 'surrogateescape')
out = []
with tarfile.open(fileobj=sys.stdin.buffer, mode='r|') as t:
    for m in t:
        body = t.extractfile(m).read() if m.isreg() else b''
        kinds = [('file', m.isreg), ('directory', m.isdir), ('symlink', m.issym), ('link', m.islnk),
                 ('character-device', m.ischr), ('block-device', m.isblk), ('fifo', m.isfifo)]
        out.append({'name': raw(m.name).decode(), 'type': next(k for k, is_kind in kinds if is_kind()),
                    'mode': m.mode, 'uid': m.uid, 'gid': m.gid, 'mtime': int(m.mtime // 1),
                    'linkname': raw(m.linkname).decode(), 'devmajor': m.devmajor, 'devminor': m.devminor,
                    'body': body.hex(),
                    'xattrs': {k[13:]: raw(v).hex() for k, v in m.pax_headers.items() if k.startswith('SCHILY.xattr.')}})
print(json.dumps(out))
`;
    const run = await execa('python3', ['-c', script], { input: tarOf(HARD) });
    // Python strips a directory's trailing slash.
    const expected = HARD.map(writtenAsSeen).map((e) => ({ ...e, name: e.name.replace(/\/$/, '') }));
    expect(JSON.parse(run.stdout)).toEqual(expected);
  });
});

// ---- what we make of what GNU tar writes --------------------------------------------------

describe('our reader reads what GNU tar writes', () => {
  let work: string;
  let src: string;
  beforeAll(async () => {
    work = await tempDir();
    src = path.join(work, 'src');
  });
  afterAll(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  /** A tree of what each format can hold; `long`: names and targets only pax and GNU can. */
  async function buildTree(long: boolean): Promise<Seen[]> {
    await fs.rm(src, { recursive: true, force: true });
    const deep = long ? `${'d'.repeat(120)}/${'e'.repeat(150)}` : `${'d'.repeat(90)}/${'e'.repeat(50)}`;
    const file = long ? `${deep}/${'f'.repeat(200)}` : `${deep}/${'f'.repeat(90)}`;
    const target = long ? 't'.repeat(200) : 'target';
    await fs.mkdir(path.join(src, deep), { recursive: true });
    await fs.writeFile(path.join(src, file), 'deep');
    await fs.chmod(path.join(src, file), 0o644);
    await fs.symlink(target, path.join(src, 'link'));
    await fs.writeFile(path.join(src, 'ids'), 'ids');
    await fs.link(path.join(src, 'ids'), path.join(src, 'same'));
    await fs.chown(path.join(src, 'ids'), long ? 3_000_000 : 3000, long ? 4_000_000 : 4000);
    await fs.chmod(path.join(src, 'ids'), 0o2750);
    await execa('setfattr', ['-n', 'user.bin', '-v', `0x${BINARY.toString('hex')}`, path.join(src, 'ids')]);
    const dirs = deep.split('/').map((_, i, all) => `${all.slice(0, i + 1).join('/')}/`);
    for (const d of dirs) await fs.chmod(path.join(src, d), 0o755);
    const time = long ? '@-86401' : `@${T}`;
    for (const p of [...dirs, file, 'link', 'ids', 'same']) await execa('touch', ['-h', '-d', time, path.join(src, p)]);
    const seen = (name: string, extra: Partial<Seen>): Seen => ({
      name: `./${name}`,
      type: 'file',
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtime: long ? -86_401 : T,
      linkname: '',
      devmajor: 0,
      devminor: 0,
      body: '',
      xattrs: {},
      ...extra,
    });
    const ids = { uid: long ? 3_000_000 : 3000, gid: long ? 4_000_000 : 4000, mode: 0o2750 };
    return [
      ...dirs.map((d) => seen(d, { type: 'directory', mode: 0o755 })),
      seen(file, { body: Buffer.from('deep').toString('hex') }),
      seen('ids', { ...ids, body: Buffer.from('ids').toString('hex') }),
      seen('link', { type: 'symlink', mode: 0o777, linkname: target }),
      seen('same', { ...ids, type: 'link', linkname: './ids' }),
    ];
  }

  async function gnuTar(format: string, ...options: string[]): Promise<Buffer> {
    const top = (await fs.readdir(src)).sort().map((n) => `./${n}`); // the deep directory first
    const args = [`--format=${format}`, ...options, '--sort=name', '-cf', '-', '-C', src, ...top];
    const made = await execa('tar', args, { encoding: 'buffer' });
    return Buffer.from(made.stdout);
  }

  test('pax, with xattrs', async () => {
    const expected = await buildTree(true);
    const tar = await gnuTar('pax', '--xattrs', '--xattrs-include=*');
    const bin = { 'user.bin': BINARY.toString('hex') };
    // GNU tar gives a hardlink entry no xattrs of its own: they are its target's.
    const withXattrs = expected.map((e) => (e.name === './ids' ? { ...e, xattrs: bin } : e));
    expect(await readSeen(dribble(tar))).toEqual(withXattrs);
  });

  test('gnu: long names and targets in L and K entries, large ids and old times in base 256', async () => {
    const expected = await buildTree(true);
    const tar = await gnuTar('gnu');
    expect(tar.includes('././@LongLink')).toBe(true);
    expect(await readSeen(Readable.from([tar]))).toEqual(expected);
    expect(await readSeen(Readable.from([await gnuTar('oldgnu')]))).toEqual(expected);
  });

  test('ustar: names split into prefix and name', async () => {
    const expected = await buildTree(false);
    const tar = await gnuTar('ustar');
    expect(tar.includes('ustar\x0000')).toBe(true);
    expect(await readSeen(Readable.from([tar]))).toEqual(expected);
  });

  test('sparse files: pax ones are refused rather than read as their maps, GNU ones have no type', async () => {
    await fs.rm(src, { recursive: true, force: true });
    await fs.mkdir(src);
    await execa('truncate', ['-s', '10M', path.join(src, 'sparse')]);
    await fs.appendFile(path.join(src, 'sparse'), 'data');
    const sparse = async (format: string) => {
      const made = await execa('tar', ['--sparse', `--format=${format}`, '-cf', '-', '-C', src, 'sparse'], { encoding: 'buffer' });
      return Readable.from([Buffer.from(made.stdout)]);
    };
    await expect(readSeen(await sparse('pax'))).rejects.toMatchObject({
      code: 'TAR_UNSUPPORTED',
      message: expect.stringContaining('GNU sparse file'),
    });
    expect((await readSeen(await sparse('gnu'))).map((e) => e.type)).toEqual(['typeflag S']);
  });

  test('pax global headers apply to every later entry', async () => {
    await buildTree(false);
    const tar = await gnuTar('pax', '--pax-option=SCHILY.xattr.user.global=g');
    const seen = await readSeen(Readable.from([tar]));
    expect(seen.length).toBeGreaterThan(3);
    for (const e of seen) expect(e.xattrs).toEqual({ 'user.global': Buffer.from('g').toString('hex') });
  });
});

// ---- streaming and damage -----------------------------------------------------------------

describe('readTar', () => {
  const sample = (): Buffer =>
    tarOf([
      { header: { name: Buffer.from('a') }, body: Buffer.alloc(1000, 'a') },
      { header: { name: Buffer.from('b') }, body: Buffer.from('b') },
    ]);

  async function names(src: Readable): Promise<string[]> {
    const out: string[] = [];
    for await (const e of readTar(src)) out.push(e.header.name);
    return out;
  }

  test('unread and half-read bodies are skipped; the source is read past the end blocks', async () => {
    const src = Readable.from([sample(), Buffer.alloc(8192), Buffer.from('after the archive')]);
    const seen: string[] = [];
    for await (const { header, body } of readTar(src)) {
      seen.push(header.name);
      if (header.name === 'a') for await (const _ of body) break;
    }
    expect(seen).toEqual(['a', 'b']);
    expect(src.readableEnded).toBe(true);
  });

  test('an archive that ends without end blocks, or with one, is complete', async () => {
    const tar = sample();
    expect(await names(Readable.from([tar.subarray(0, tar.length - 1024)]))).toEqual(['a', 'b']);
    expect(await names(Readable.from([tar.subarray(0, tar.length - 512)]))).toEqual(['a', 'b']);
  });

  test('a body is streamed, never gathered: the source is read only as the body is consumed', async () => {
    const MiB = 1 << 20;
    let produced = 0;
    async function* source(): AsyncGenerator<Buffer> {
      yield encodeEntryHeader(fileHeader('big', { size: 64 * MiB }));
      for (let i = 0; i < 64; i++) {
        produced++;
        yield Buffer.alloc(MiB, i);
      }
      yield endOfArchive();
    }
    let consumed = 0;
    let ahead = 0;
    for await (const { body } of readTar(Readable.from(source(), { highWaterMark: 1 }))) {
      for await (const chunk of body) {
        consumed += chunk.length;
        ahead = Math.max(ahead, produced - consumed / MiB);
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    expect(consumed).toBe(64 * MiB);
    expect(ahead).toBeLessThanOrEqual(3);
  });

  test('stopping early destroys the source', async () => {
    const src = Readable.from([sample()]);
    for await (const _ of readTar(src)) break;
    expect(src.destroyed).toBe(true);
  });

  test('a bad checksum is TAR_INVALID, and names the likely cause', async () => {
    const tar = sample();
    tar[0] = 'z'.charCodeAt(0);
    await expect(names(Readable.from([tar]))).rejects.toMatchObject({ code: 'TAR_INVALID', message: expect.stringContaining('checksum') });
    const incompressible = tarOf([{ header: { name: Buffer.from('r') }, body: randomBytes(4096) }]);
    const gzipped = await execa('gzip', ['-c'], { input: incompressible, encoding: 'buffer' });
    await expect(names(Readable.from([Buffer.from(gzipped.stdout)]))).rejects.toThrow(/checksum mismatch: not a tar archive \(a compressed one\?\)/);
  });

  test('a truncated archive is TAR_INVALID wherever it is cut', async () => {
    const plain = sample();
    const withPax = tarOf([{ header: { name: Buffer.from('x'.repeat(200)) }, body: Buffer.from('pax') }]);
    const cuts: [Buffer, number][] = [
      [plain, 100], // inside the first header
      [plain, 512 + 10], // inside a body
      [plain, 512 + 1000 + 5], // inside the padding after it
      [plain, 1536 + 100], // inside the second header
      [withPax, 512 + 50], // inside the pax records
      [withPax, 1024], // after the pax header, before its entry
    ];
    for (const [tar, at] of cuts) {
      await expect(names(Readable.from([tar.subarray(0, at)]))).rejects.toMatchObject({ code: 'TAR_INVALID' });
    }
    await expect(names(Readable.from([plain.subarray(0, 600)]))).rejects.toThrow('the archive is truncated');
  });

  test('a zero block followed by more entries, malformed pax records and bad numbers are TAR_INVALID', async () => {
    const two = sample();
    const zeroThenMore = Buffer.concat([two.subarray(0, 1536), Buffer.alloc(512), two.subarray(1536)]);
    await expect(names(Readable.from([zeroThenMore]))).rejects.toMatchObject({ code: 'TAR_INVALID' });

    const pax = (records: string) => {
      const data = Buffer.from(records);
      const header = encodeEntryHeader(fileHeader('x'), [['k', Buffer.from('v')]]);
      // Replace the records (and their size) of a real pax header, then its checksum.
      const block = Buffer.from(header.subarray(0, 512));
      block.write(data.length.toString(8).padStart(11, '0') + ' ', 124, 'latin1');
      fixChecksum(block);
      return Buffer.concat([block, data, blockPadding(data.length), header.subarray(header.length - 512), endOfArchive()]);
    };
    expect(await names(Readable.from([pax('9 path=y\n')]))).toEqual(['y']);
    for (const bad of ['9 path=y', '99 path=y\n', 'x path=y\n', '8 pathy\n', '10 size=z\n', '13 mtime=1e3\n']) {
      await expect(names(Readable.from([pax(bad)]))).rejects.toMatchObject({ code: 'TAR_INVALID' });
    }

    const badMode = sample();
    badMode.write('0009', 100, 'latin1');
    fixChecksum(badMode);
    await expect(names(Readable.from([badMode]))).rejects.toThrow(/header field mode holds "0009.*", not an octal number/);
  });
});
