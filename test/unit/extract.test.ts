// extractTar: a named table of path-escape cases (after containerd's TestBreakouts), the
// overlay whiteout conversion, metadata, and the batched xattr/node helpers under it.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { EngineError, PathEscapeError } from '../../engine/errors.js';
import { extractTar } from '../../engine/fsutil/extract.js';
import { makeNodes, readXattrsTree, shellQuote, writeXattrs } from '../../engine/fsutil/special.js';

// ---- building tars in code ------------------------------------------------------------

type EntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo' | 'contiguous-file';

interface TarEntry {
  name: string;
  type?: EntryType;
  body?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

const T0 = new Date(1_600_000_000_000);

const file = (name: string, body = '', extra: Partial<TarEntry> = {}): TarEntry => ({ name, type: 'file', body, ...extra });
const dir = (name: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name, type: 'directory', ...extra });
const symlink = (name: string, linkname: string): TarEntry => ({ name, type: 'symlink', linkname });
const hardlink = (name: string, linkname: string, extra: Partial<TarEntry> = {}): TarEntry => ({ name, type: 'link', linkname, ...extra });

async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      linkname: e.linkname,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? T0,
      devmajor: e.devmajor,
      devminor: e.devminor,
      pax: e.pax,
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (type === 'file' || type === 'contiguous-file') pack.entry(header, e.body ?? '', cb);
      else pack.entry(header, cb);
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** Rewrites the typeflag of the header block at `offset` (and its checksum). */
function setTypeflag(tar: Buffer, offset: number, flag: string): Buffer {
  const out = Buffer.from(tar);
  out[offset + 156] = flag.charCodeAt(0);
  out.fill(0x20, offset + 148, offset + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[offset + i]!;
  out.write(sum.toString(8).padStart(6, '0') + '\0 ', offset + 148, 'latin1');
  return out;
}

// ---- fixtures ----------------------------------------------------------------------------

async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

interface Sandbox {
  base: string;
  dest: string;
  /** Absolute host path of a directory outside dest that no entry may touch. */
  victim: string;
  /** A name no case may create anywhere outside dest. */
  marker: string;
}

async function sandbox(): Promise<Sandbox> {
  const base = await tempDir('strata-breakout-');
  const victim = path.join(base, 'victim');
  const dest = path.join(base, 'dest');
  await fs.mkdir(victim);
  await fs.mkdir(dest, { mode: 0o700 });
  await fs.writeFile(path.join(victim, 'hello'), 'victim', { mode: 0o644 });
  await fs.chmod(path.join(victim, 'hello'), 0o644);
  await fs.utimes(path.join(victim, 'hello'), 1000, 1000);
  await fs.utimes(victim, 2000, 2000);
  return { base, dest, victim, marker: `strata-breakout-${randomBytes(6).toString('hex')}` };
}

/** Everything under `base` except dest: kind, mode, size, times, links, content, xattrs. */
async function snapshotOutside(s: Sandbox): Promise<unknown> {
  const out: Record<string, unknown> = {};
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    const rel = path.relative(s.base, p) || '.';
    const rec: Record<string, unknown> = { mode: st.mode, size: st.size, mtime: st.mtimeMs, nlink: st.nlink, uid: st.uid };
    if (st.isFile()) rec.content = await fs.readFile(p, 'utf8');
    if (st.isSymbolicLink()) rec.target = await fs.readlink(p);
    out[rel] = rec;
    if (st.isDirectory()) {
      for (const name of (await fs.readdir(p)).sort()) {
        const child = path.join(p, name);
        if (child !== s.dest) await walk(child);
      }
    }
  };
  await walk(s.base);
  const xattrs = await readXattrsTree(s.victim);
  out.xattrs = [...xattrs].map(([k, v]) => [k, [...v].map(([n, b]) => [n, b.toString('hex')])]);
  return out;
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** Host path that `abs` (an absolute path as the tar sees it) has inside dest. */
const inDest = (s: Sandbox, abs: string) => path.join(s.dest, abs);

async function readText(p: string): Promise<string> {
  return fs.readFile(p, 'utf8');
}

async function sameInode(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([fs.lstat(a), fs.lstat(b)]);
  return x.ino === y.ino && x.dev === y.dev;
}

async function isWhiteout(p: string): Promise<boolean> {
  const st = await fs.lstat(p);
  return st.isCharacterDevice() && st.rdev === 0;
}

// ---- the breakout table ------------------------------------------------------------------

interface BreakoutCase {
  name: string;
  whiteouts?: 'overlay' | 'keep';
  entries: (s: Sandbox) => TarEntry[];
  /** The error expected (a PathEscapeError, or an EngineError code), or a check of the in-root result. */
  expect: 'PathEscapeError' | 'TAR_INVALID' | ((s: Sandbox) => Promise<void>);
}

const breakouts: BreakoutCase[] = [
  {
    name: 'absolute name lands under the root',
    entries: (s) => [file(`${s.victim}/hello`, 'pwned')],
    expect: async (s) => expect(await readText(inDest(s, `${s.victim}/hello`))).toBe('pwned'),
  },
  {
    name: 'leading ./ is stripped',
    entries: () => [file('./x', 'ok')],
    expect: async (s) => expect(await readText(path.join(s.dest, 'x'))).toBe('ok'),
  },
  {
    name: '../ name',
    entries: () => [file('../victim/hello', 'pwned')],
    expect: 'PathEscapeError',
  },
  {
    name: '../ name next to the marker',
    entries: (s) => [file(`../${s.marker}`, 'pwned')],
    expect: 'PathEscapeError',
  },
  {
    name: 'dot-dot climbing out after a directory',
    entries: () => [dir('a/'), file('a/../../victim/hello', 'pwned')],
    expect: 'PathEscapeError',
  },
  {
    name: 'dot-dot that stays inside',
    entries: () => [dir('a/'), file('a/../b', 'ok')],
    expect: async (s) => expect(await readText(path.join(s.dest, 'b'))).toBe('ok'),
  },
  {
    name: 'long pax name climbing out',
    entries: () => [file(`../${'a'.repeat(150)}`, 'pwned')],
    expect: 'PathEscapeError',
  },
  {
    name: 'pax path overriding a harmless name',
    entries: () => [file('harmless', 'pwned', { pax: { path: '../victim/hello' } })],
    expect: 'PathEscapeError',
  },
  {
    name: 'symlink to an absolute host directory, then a file through it',
    entries: (s) => [symlink('evil', s.victim), file('evil/hello', 'pwned')],
    expect: async (s) => {
      expect(await readText(inDest(s, `${s.victim}/hello`))).toBe('pwned');
      expect((await fs.lstat(path.join(s.dest, 'evil'))).isSymbolicLink()).toBe(true);
    },
  },
  {
    name: 'symlink climbing with ../, then a file through it',
    entries: (s) => [symlink('evil', '../../../../../../../..'), file(`evil/${s.marker}`, 'pwned')],
    expect: async (s) => expect(await readText(path.join(s.dest, s.marker))).toBe('pwned'),
  },
  {
    name: 'symlink to ../victim, then a file through it',
    entries: () => [symlink('evil', '../victim'), file('evil/hello', 'pwned')],
    expect: async (s) => expect(await readText(path.join(s.dest, 'victim/hello'))).toBe('pwned'),
  },
  {
    name: 'symlink with dot-dot inside an absolute target',
    entries: () => [dir('dummy/'), symlink('evil', '/dummy/../../victim'), file('evil/hello', 'pwned')],
    expect: async (s) => expect(await readText(path.join(s.dest, 'victim/hello'))).toBe('pwned'),
  },
  {
    name: 'symlink in a subdirectory climbing out',
    entries: () => [dir('a/'), dir('a/b/'), symlink('a/b/up', '../../../../victim'), file('a/b/up/hello', 'pwned')],
    expect: async (s) => expect(await readText(path.join(s.dest, 'victim/hello'))).toBe('pwned'),
  },
  {
    name: 'symlink chain ending at an absolute host path',
    entries: (s) => [dir('c/'), symlink('c/d', s.victim), symlink('b', 'c/d'), symlink('a', 'b'), file('a/hello', 'pwned')],
    expect: async (s) => expect(await readText(inDest(s, `${s.victim}/hello`))).toBe('pwned'),
  },
  {
    name: 'symlink chain through a symlinked directory',
    entries: (s) => [dir('dummy/'), symlink('dummy/etc', s.victim), symlink('localetc', '/dummy/etc'), file('localetc/hello', 'pwned')],
    expect: async (s) => expect(await readText(inDest(s, `${s.victim}/hello`))).toBe('pwned'),
  },
  {
    name: 'symlink loop',
    entries: () => [symlink('a', 'b'), symlink('b', 'a'), file('a/x', 'pwned')],
    expect: 'PathEscapeError',
  },
  {
    name: 'symlink replaces a directory, then a file under it',
    entries: (s) => [dir('etc/'), file('etc/x', 'old'), symlink('etc', s.victim), file('etc/hello', 'pwned')],
    expect: async (s) => {
      expect((await fs.lstat(path.join(s.dest, 'etc'))).isSymbolicLink()).toBe(true);
      expect(await readText(inDest(s, `${s.victim}/hello`))).toBe('pwned');
    },
  },
  {
    name: 'directory replaces a symlink, then a file under it',
    entries: (s) => [symlink('d', s.victim), dir('d/'), file('d/hello', 'pwned')],
    expect: async (s) => {
      expect((await fs.lstat(path.join(s.dest, 'd'))).isDirectory()).toBe(true);
      expect(await readText(path.join(s.dest, 'd/hello'))).toBe('pwned');
    },
  },
  {
    name: 'file replaces a symlink to a host file',
    entries: (s) => [symlink('x', `${s.victim}/hello`), file('x', 'pwned')],
    expect: async (s) => {
      expect((await fs.lstat(path.join(s.dest, 'x'))).isFile()).toBe(true);
      expect(await readText(path.join(s.dest, 'x'))).toBe('pwned');
    },
  },
  {
    name: 'symlink named ..',
    entries: (s) => [symlink('..', s.victim)],
    expect: 'PathEscapeError',
  },
  {
    name: 'symlink replacing the root',
    entries: (s) => [symlink('./', s.victim)],
    expect: 'TAR_INVALID',
  },
  {
    name: 'file under a file',
    entries: () => [file('f', 'x'), file('f/hello', 'pwned')],
    expect: 'TAR_INVALID',
  },
  {
    name: 'hardlink with dot-dot',
    entries: () => [hardlink('x', '../victim/hello')],
    expect: 'PathEscapeError',
  },
  {
    name: 'hardlink to an absolute host path',
    entries: (s) => [hardlink('x', `${s.victim}/hello`)],
    expect: 'TAR_INVALID',
  },
  {
    name: 'hardlink to an absolute path that exists inside',
    entries: (s) => [file(`${s.victim}/hello`, 'inside'), hardlink('x', `${s.victim}/hello`)],
    expect: async (s) => expect(await sameInode(path.join(s.dest, 'x'), inDest(s, `${s.victim}/hello`))).toBe(true),
  },
  {
    name: 'hardlink through a relative symlink',
    entries: () => [dir('etc/'), file('etc/passwd', 'inside'), dir('breakouts/'), symlink('breakouts/d1', '../../etc'), hardlink('breakouts/mypasswd', 'breakouts/d1/passwd')],
    expect: async (s) => expect(await sameInode(path.join(s.dest, 'breakouts/mypasswd'), path.join(s.dest, 'etc/passwd'))).toBe(true),
  },
  {
    name: 'hardlink through a symlink to a host directory',
    entries: (s) => [symlink('evil', s.victim), hardlink('x', 'evil/hello')],
    expect: 'TAR_INVALID',
  },
  {
    name: 'hardlink to a symlink pointing at a host file, with a mode',
    entries: (s) => [symlink('s', `${s.victim}/hello`), hardlink('h', 's', { mode: 0o777 })],
    expect: async (s) => {
      expect((await fs.lstat(path.join(s.dest, 'h'))).isSymbolicLink()).toBe(true);
      expect(await sameInode(path.join(s.dest, 'h'), path.join(s.dest, 's'))).toBe(true);
    },
  },
  {
    name: 'hardlink to a directory',
    entries: () => [dir('d/'), hardlink('x', 'd')],
    expect: 'TAR_INVALID',
  },
  {
    name: 'hardlink whose own name goes through a symlink',
    entries: (s) => [file('f', 'inside'), symlink('evil', s.victim), hardlink('evil/hello', 'f')],
    expect: async (s) => expect(await sameInode(inDest(s, `${s.victim}/hello`), path.join(s.dest, 'f'))).toBe(true),
  },
  {
    name: 'device node through a symlink',
    entries: (s) => [symlink('evil', s.victim), { name: 'evil/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 }],
    expect: async (s) => {
      const st = await fs.lstat(inDest(s, `${s.victim}/null`));
      expect(st.isCharacterDevice()).toBe(true);
    },
  },
  {
    name: 'whiteout named ..',
    whiteouts: 'overlay',
    entries: () => [file('.wh...')],
    expect: 'PathEscapeError',
  },
  {
    name: 'whiteout named . in a directory',
    whiteouts: 'overlay',
    entries: () => [dir('etc/'), file('etc/.wh..')],
    expect: 'TAR_INVALID',
  },
  {
    name: 'whiteout of a symlink to a host directory',
    whiteouts: 'overlay',
    entries: (s) => [symlink('localvictim', s.victim), file('.wh.localvictim')],
    expect: async (s) => expect(await isWhiteout(path.join(s.dest, 'localvictim'))).toBe(true),
  },
  {
    name: 'whiteout through a symlinked parent',
    whiteouts: 'overlay',
    entries: (s) => [symlink('evil', s.victim), file('evil/.wh.hello')],
    expect: async (s) => expect(await isWhiteout(inDest(s, `${s.victim}/hello`))).toBe(true),
  },
  {
    name: 'opaque marker through a symlinked parent',
    whiteouts: 'overlay',
    entries: (s) => [symlink('evil', s.victim), file('evil/.wh..wh..opq')],
    expect: async (s) => {
      const attrs = await readXattrsTree(inDest(s, s.victim));
      expect(attrs.get('')?.get('trusted.overlay.opaque')?.toString()).toBe('y');
    },
  },
  {
    name: 'overlay xattrs planted by the tar are dropped',
    entries: (s) => [symlink('evil', s.victim), dir('evil/', { pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } })],
    expect: async (s) => {
      const attrs = await readXattrsTree(s.dest);
      expect([...attrs.values()].some((m) => [...m.keys()].some((k) => k.startsWith('trusted.overlay.')))).toBe(false);
    },
  },
];

describe('extractTar breakouts', () => {
  test.each(breakouts.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const s = await sandbox();
    try {
      const before = await snapshotOutside(s);
      const tar = await makeTar(c.entries(s));
      const run = extractTar(Readable.from([tar]), s.dest, { whiteouts: c.whiteouts ?? 'keep' });
      if (c.expect === 'PathEscapeError') {
        await expect(run).rejects.toBeInstanceOf(PathEscapeError);
      } else if (typeof c.expect === 'string') {
        await expect(run).rejects.toMatchObject({ code: c.expect });
      } else {
        await run;
        await c.expect(s);
      }
      expect(await snapshotOutside(s)).toEqual(before);
      for (const where of ['/', os.tmpdir(), path.dirname(s.base), s.base]) {
        expect(await exists(path.join(where, s.marker))).toBe(false);
      }
    } finally {
      await fs.rm(s.base, { recursive: true, force: true });
    }
  });
});

// ---- behaviour ---------------------------------------------------------------------------

describe('extractTar', () => {
  let dest: string;
  beforeEach(async () => {
    dest = await tempDir('strata-extract-');
  });
  afterEach(async () => {
    await fs.rm(dest, { recursive: true, force: true });
  });

  const extract = async (entries: TarEntry[], whiteouts: 'overlay' | 'keep' = 'keep', sameOwner?: boolean) =>
    extractTar(Readable.from([await makeTar(entries)]), dest, { whiteouts, sameOwner });

  test('overlay whiteouts become 0/0 devices and opaque xattrs', async () => {
    const res = await extract(
      [
        file('gone', 'old'),
        dir('d/', { mtime: new Date(3_000_000) }),
        file('d/.wh..wh..opq'),
        file('d/kept', 'k'),
        file('.wh.gone', '', { uid: 7, gid: 8, mtime: new Date(5_000_000) }),
        file('d/.wh.sub'),
        file('.wh..wh.plnk'),
      ],
      'overlay',
    );
    expect(res.entries).toBe(7);
    const st = await fs.lstat(path.join(dest, 'gone'));
    expect(st.isCharacterDevice() && st.rdev === 0).toBe(true);
    expect(st.mode & 0o7777).toBe(0);
    expect([st.uid, st.gid, st.mtimeMs]).toEqual([7, 8, 5_000_000]);
    expect(await isWhiteout(path.join(dest, 'd/sub'))).toBe(true);
    expect(await exists(path.join(dest, 'd/.wh..wh..opq'))).toBe(false);
    expect(await exists(path.join(dest, '.wh..wh.plnk'))).toBe(false);
    const attrs = await readXattrsTree(dest);
    expect(attrs.get('d')?.get('trusted.overlay.opaque')?.toString()).toBe('y');
    expect((await fs.lstat(path.join(dest, 'd'))).mtimeMs).toBe(3_000_000);
  });

  test("'keep' leaves whiteout names as ordinary files", async () => {
    await extract([dir('d/'), file('d/.wh..wh..opq', 'o'), file('.wh.x', 'w')], 'keep');
    expect(await readText(path.join(dest, 'd/.wh..wh..opq'))).toBe('o');
    expect(await readText(path.join(dest, '.wh.x'))).toBe('w');
    expect((await readXattrsTree(dest)).size).toBe(0);
  });

  test('metadata: owner, setuid after chown, times deepest first, xattrs, nodes', async () => {
    await extract([
      dir('a/', { mtime: new Date(10_000), mode: 0o750, uid: 5, gid: 6 }),
      dir('a/b/', { mtime: new Date(20_000) }),
      file('a/b/suid', '#!/bin/sh\n', { mode: 0o4755, uid: 1000, gid: 1000, mtime: new Date(30_000) }),
      file('a/b/sgid', '', { mode: 0o2711, uid: 1000, gid: 50 }),
      file('a/x', 'x', { pax: { 'SCHILY.xattr.user.foo': 'bar', 'SCHILY.xattr.user.empty': '' } }),
      symlink('a/link', 'b/suid'),
      { name: 'a/fifo', type: 'fifo', mode: 0o640, uid: 3, gid: 4, mtime: new Date(40_000) },
      hardlink('a/fifo2', 'a/fifo', { mode: 0o640, uid: 3, gid: 4, mtime: new Date(40_000) }),
      { name: 'a/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'a/blk', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660, pax: { 'SCHILY.xattr.trusted.t': 'v' } },
      file('big-ids', '', { pax: { uid: '3000000', gid: '3000001' } }),
    ]);
    const st = (p: string) => fs.lstat(path.join(dest, p));
    expect(((await st('a/b/suid')).mode & 0o7777).toString(8)).toBe('4755');
    expect((await st('a/b/suid')).uid).toBe(1000);
    expect(((await st('a/b/sgid')).mode & 0o7777).toString(8)).toBe('2711');
    expect((await st('a/b/suid')).mtimeMs).toBe(30_000);
    expect((await st('a/b')).mtimeMs).toBe(20_000);
    expect((await st('a')).mtimeMs).toBe(10_000);
    expect([(await st('a')).mode & 0o7777, (await st('a')).uid, (await st('a')).gid]).toEqual([0o750, 5, 6]);
    expect((await st('a/fifo')).isFIFO()).toBe(true);
    expect(await sameInode(path.join(dest, 'a/fifo'), path.join(dest, 'a/fifo2'))).toBe(true);
    expect([(await st('a/fifo')).uid, (await st('a/fifo')).mtimeMs]).toEqual([3, 40_000]);
    expect((await st('a/null')).rdev).toBe((1 << 8) | 3);
    expect((await st('a/blk')).isBlockDevice()).toBe(true);
    expect([(await st('big-ids')).uid, (await st('big-ids')).gid]).toEqual([3000000, 3000001]);
    const attrs = await readXattrsTree(dest);
    expect(attrs.get('a/x')?.get('user.foo')?.toString()).toBe('bar');
    expect(attrs.get('a/x')?.get('user.empty')?.length).toBe(0);
    expect(attrs.get('a/blk')?.get('trusted.t')?.toString()).toBe('v');
  });

  test('sameOwner false keeps the caller as owner', async () => {
    await extract([file('f', 'x', { uid: 1234, gid: 4321, mode: 0o4755 })], 'keep', false);
    const st = await fs.lstat(path.join(dest, 'f'));
    expect([st.uid, st.gid]).toEqual([process.getuid!(), process.getgid!()]);
    expect(st.mode & 0o7777).toBe(0o4755);
  });

  test('later entries replace earlier ones, queued nodes and xattrs included', async () => {
    await extract([
      { name: 'n', type: 'fifo' },
      file('n', 'file now'),
      dir('d/'),
      file('d/f', '', { pax: { 'SCHILY.xattr.user.a': '1' } }),
      { name: 'd/p', type: 'fifo' },
      file('d', 'not a dir any more'),
      dir('keep/', { mode: 0o700 }),
      dir('keep/', { mode: 0o711 }),
    ]);
    expect(await readText(path.join(dest, 'n'))).toBe('file now');
    expect(await readText(path.join(dest, 'd'))).toBe('not a dir any more');
    expect((await fs.lstat(path.join(dest, 'keep'))).mode & 0o7777).toBe(0o711);
  });

  test('contiguous files are regular files; unknown types fail', async () => {
    await extract([{ name: 'c', type: 'contiguous-file', body: 'data' }]);
    expect(await readText(path.join(dest, 'c'))).toBe('data');
    const sparse = setTypeflag(await makeTar([file('s', 'data')]), 0, 'S');
    const dest2 = await tempDir('strata-extract-');
    try {
      await expect(extractTar(Readable.from([sparse]), dest2, { whiteouts: 'keep' })).rejects.toMatchObject({ code: 'TAR_UNSUPPORTED' });
    } finally {
      await fs.rm(dest2, { recursive: true, force: true });
    }
  });

  test('a binary xattr value is applied byte for byte', async () => {
    const tar = await makeTar([file('f', 'x', { pax: { 'SCHILY.xattr.user.bin': 'Z\nZ' } })]);
    const at = tar.indexOf('user.bin=Z');
    tar[at + 'user.bin='.length] = 0xff; // not UTF-8; the length prefix still counts right
    tar[at + 'user.bin='.length + 2] = 0x00;
    await extractTar(Readable.from([tar]), dest, { whiteouts: 'keep' });
    expect((await readXattrsTree(dest)).get('f')?.get('user.bin')).toEqual(Buffer.from([0xff, 0x0a, 0x00]));
  });

  test('a truncated tar fails and the source is destroyed', async () => {
    const tar = await makeTar([file('f', 'x'.repeat(4096))]);
    const src = Readable.from([tar.subarray(0, 1500)]);
    await expect(extractTar(src, dest, { whiteouts: 'keep' })).rejects.toThrow();
    expect(src.destroyed).toBe(true);
  });

  test('a source error is rethrown', async () => {
    const src = new PassThrough();
    const run = extractTar(src, dest, { whiteouts: 'keep' });
    src.write((await makeTar([file('f', 'x')])).subarray(0, 512));
    src.destroy(new Error('network went away'));
    await expect(run).rejects.toThrow('network went away');
  });

  test('a large file is streamed through', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17).toString('base64');
    const tar = await makeTar([file('big', body)]);
    // Deliver in small chunks, as a network stream would.
    const chunks: Buffer[] = [];
    for (let i = 0; i < tar.length; i += 7000) chunks.push(tar.subarray(i, i + 7000));
    await extractTar(Readable.from(chunks), dest, { whiteouts: 'keep' });
    expect(await readText(path.join(dest, 'big'))).toBe(body);
  });

  test('errors name the entry', async () => {
    await expect(extract([dir('d/'), hardlink('x', 'd')])).rejects.toThrow(/"x".*directory/);
    expect(await extract([dir('./')]).then((r) => r.entries)).toBe(1);
  });
});

// ---- special.ts ------------------------------------------------------------------------------

describe('batched xattrs and nodes', () => {
  let root: string;
  beforeEach(async () => {
    root = await tempDir('strata-special-');
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  test('an empty tree has no xattrs', async () => {
    await fs.mkdir(path.join(root, 'a/b'), { recursive: true });
    await fs.writeFile(path.join(root, 'a/f'), '');
    await fs.symlink('nowhere', path.join(root, 'dangling'));
    expect((await readXattrsTree(root)).size).toBe(0);
  });

  test('odd names and values survive write then read', async () => {
    const names = ['plain', "it's", 'sp ace', 'new\nline', 'back\\slash', 'eq=ual', 'é-ü', '#hash', '"q"'];
    for (const n of names) await fs.writeFile(path.join(root, n), '');
    await fs.mkdir(path.join(root, 'dir'));
    await fs.symlink('plain', path.join(root, 'link'));
    const value = Buffer.from([0, 1, 0xff, 0x3d, 0x0a, 0x5c]);
    await writeXattrs([
      ...names.map((n) => ({ path: path.join(root, n), name: 'user.v', value })),
      { path: path.join(root, 'plain'), name: 'user.we=ird name', value: Buffer.from('x') },
      { path: path.join(root, 'plain'), name: 'user.empty', value: Buffer.alloc(0) },
      { path: root, name: 'trusted.root', value: Buffer.from('r') },
      { path: path.join(root, 'link'), name: 'trusted.onlink', value: Buffer.from('l') },
    ]);
    const got = await readXattrsTree(root);
    for (const n of names) expect(got.get(n)?.get('user.v')).toEqual(value);
    expect(got.get('plain')?.get('user.we=ird name')?.toString()).toBe('x');
    expect(got.get('plain')?.get('user.empty')?.length).toBe(0);
    expect(got.get('')?.get('trusted.root')?.toString()).toBe('r');
    expect(got.get('link')?.get('trusted.onlink')?.toString()).toBe('l');
    expect(got.has('dir')).toBe(false);
  });

  test('writeXattrs: unsupported targets are skipped only when asked', async () => {
    await fs.writeFile(path.join(root, 'f'), '');
    await fs.symlink('f', path.join(root, 'l'));
    const onLink = [{ path: path.join(root, 'l'), name: 'user.x', value: Buffer.from('1') }];
    await expect(writeXattrs(onLink)).rejects.toBeInstanceOf(EngineError);
    await writeXattrs([...onLink, { path: path.join(root, 'f'), name: 'user.y', value: Buffer.from('2') }], { ignoreUnsupported: true });
    expect((await readXattrsTree(root)).get('f')?.get('user.y')?.toString()).toBe('2');
    await expect(writeXattrs([{ path: path.join(root, 'missing'), name: 'user.x', value: Buffer.from('1') }], { ignoreUnsupported: true })).rejects.toMatchObject({
      code: 'XATTR_WRITE_FAILED',
    });
  });

  test('readXattrsTree fails on a missing directory', async () => {
    await expect(readXattrsTree(path.join(root, 'missing'))).rejects.toMatchObject({ code: 'XATTR_READ_FAILED' });
  });

  test('makeNodes creates exact modes at quoted paths, in one batch', async () => {
    // Were quoting broken, sh would expand or split this and the node would get another name.
    const odd = path.join(root, `it's $(echo pwned) "x" \\ ; *`);
    await makeNodes([
      { path: odd, type: 'fifo', major: 0, minor: 0, mode: 0o4777 },
      { path: path.join(root, 'zero'), type: 'char', major: 1, minor: 5, mode: 0o600 },
      { path: path.join(root, 'wh'), type: 'char', major: 0, minor: 0, mode: 0 },
      { path: path.join(root, 'loop'), type: 'block', major: 7, minor: 1, mode: 0o660 },
    ]);
    expect((await fs.readdir(root)).sort()).toEqual([path.basename(odd), 'loop', 'wh', 'zero'].sort());
    const fifo = await fs.lstat(odd);
    expect(fifo.isFIFO()).toBe(true);
    expect(fifo.mode & 0o7777).toBe(0o4777);
    expect((await fs.lstat(path.join(root, 'zero'))).rdev).toBe((1 << 8) | 5);
    expect(await isWhiteout(path.join(root, 'wh'))).toBe(true);
    expect((await fs.lstat(path.join(root, 'wh'))).mode & 0o7777).toBe(0);
    expect((await fs.lstat(path.join(root, 'loop'))).isBlockDevice()).toBe(true);
    await expect(makeNodes([{ path: path.join(root, 'zero'), type: 'fifo', major: 0, minor: 0, mode: 0o600 }])).rejects.toMatchObject({
      code: 'NODE_CREATE_FAILED',
    });
  });

  test('shellQuote', () => {
    expect(shellQuote("a'b")).toBe(`'a'\\''b'`);
    expect(shellQuote('$x')).toBe(`'$x'`);
  });
});
