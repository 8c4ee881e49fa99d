// The layer tar writer: deterministic bytes, round trips through extractTar, whiteouts from
// a real overlay mount, and streaming (backpressure, failures) behaviour.
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { execa } from 'execa';
import { extractTar } from '../../engine/fsutil/extract.js';
import { makeNodes, readXattrsTree, writeXattrs } from '../../engine/fsutil/special.js';
import { hashLayerTar, writeLayerTar, type LayerTarOptions } from '../../engine/layer/tar.js';
import { readTar } from '../../engine/tar/tarformat.js';

// ---- helpers ------------------------------------------------------------------------------

async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** The layer tar of `dir`, collected in memory (test trees are small). */
async function tarOf(dir: string, opts: LayerTarOptions = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  const { size } = await writeLayerTar(dir, sink, opts);
  const buf = Buffer.concat(chunks);
  expect(size).toBe(buf.length);
  return buf;
}

interface Listed {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  size: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  pax: Record<string, Buffer> | null;
  sha?: string;
}

async function listTar(tar: Buffer): Promise<Listed[]> {
  const out: Listed[] = [];
  for await (const { header: h, pax, body } of readTar(Readable.from([tar]))) {
    const hash = createHash('sha256');
    for await (const chunk of body) hash.update(chunk);
    out.push({
      name: h.name,
      type: h.type ?? h.typeflag,
      mode: h.mode,
      uid: h.uid,
      gid: h.gid,
      uname: h.uname,
      gname: h.gname,
      mtime: h.mtime.getTime() / 1000,
      size: h.size,
      linkname: h.linkname,
      devmajor: h.devmajor,
      devminor: h.devminor,
      pax: pax.size > 0 ? Object.fromEntries(pax) : null,
      ...(h.type === 'file' ? { sha: hash.digest('hex') } : {}),
    });
  }
  return out;
}

/** Every byte value, so no decoding of it as text survives. */
const BINARY_VALUE = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Sets every mtime under `root` (children before their directory) to `t`, symlinks too. */
async function setAllTimes(root: string, t: number): Promise<void> {
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    if (st.isDirectory()) for (const n of await fs.readdir(p)) await walk(path.join(p, n));
    await fs.lutimes(p, t, t);
  };
  await walk(root);
}

/** A tree with every kind of entry a layer can hold, and one (a socket) it cannot. */
async function buildRichTree(root: string): Promise<{ close: () => Promise<void> }> {
  const p = (rel: string) => path.join(root, rel);
  await fs.mkdir(p('bin'));
  await fs.writeFile(p('bin/suid'), '#!/bin/sh\necho suid\n');
  await fs.writeFile(p('bin/sgid'), 'sgid');
  await fs.mkdir(p('tmp'));
  await fs.mkdir(p('etc'));
  await fs.writeFile(p('etc/conf'), 'x=1\n');
  await fs.link(p('etc/conf'), p('etc/conf.hard'));
  await fs.mkdir(p('zz'));
  await fs.link(p('etc/conf'), p('zz/hard2'));
  await fs.writeFile(p('etc/secret'), 'no one reads this');
  await fs.mkdir(p('lib'));
  await fs.symlink('../etc/conf', p('lib/rel'));
  await fs.symlink('/etc/conf', p('lib/abs'));
  await fs.symlink('nowhere', p('lib/dangling'));
  await fs.mkdir(p('data'));
  await fs.writeFile(p('data/big'), randomBytes(5 * 1024 * 1024 + 123));
  await fs.writeFile(p('data/empty'), '');
  await fs.writeFile(p('data/xattr'), 'has xattrs');
  await fs.writeFile(p('data/binary-xattr'), '');
  await fs.mkdir(p('dev'));
  await fs.mkdir(p('long'));
  await fs.writeFile(p(`long/${'n'.repeat(120)}`), 'long name');
  await fs.writeFile(p('名前.txt'), 'non-ascii name');
  await fs.mkdir(p('run'));
  await makeNodes([
    { path: p('dev/fifo'), type: 'fifo', major: 0, minor: 0, mode: 0o600 },
    { path: p('dev/null'), type: 'char', major: 1, minor: 3, mode: 0o666 },
    { path: p('dev/loop9'), type: 'block', major: 7, minor: 9, mode: 0o660 },
  ]);
  await writeXattrs([
    { path: p('data/xattr'), name: 'user.foo', value: Buffer.from('bar') },
    { path: p('data'), name: 'user.dir', value: Buffer.from('1') },
    { path: p('data/binary-xattr'), name: 'user.bin', value: BINARY_VALUE },
    // cap_net_raw+ep (VFS_CAP_REVISION_2): how `setcap` marks e.g. ping.
    { path: p('bin/suid'), name: 'security.capability', value: Buffer.from('0100000200200000000000000000000000000000', 'hex') },
  ]);
  await fs.chown(p('bin/sgid'), 1000, 50);
  await fs.chown(p('etc/secret'), 1234, 5678);
  await fs.chown(p('etc/conf'), 7, 8);
  await fs.lchown(p('lib/rel'), 9, 10);
  await fs.chmod(p('bin/suid'), 0o4755);
  await fs.chmod(p('bin/sgid'), 0o2711);
  await fs.chmod(p('tmp'), 0o1777);
  await fs.chmod(p('etc/secret'), 0);
  // A socket: present on disk, never in a layer.
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(p('run/sock'), resolve));
  await setAllTimes(root, 1_600_000_000.75);
  await fs.utimes(p('etc/conf'), 1_500_000_000.25, 1_500_000_000.25);
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/**
 * A tree built the same way every time that reaches each of the writer's header layouts:
 * split and pax names, long and non-ASCII link targets, ids and times beyond the header
 * fields, xattrs, devices, whiteouts, an opaque directory.
 */
async function buildPinnedTree(root: string): Promise<void> {
  const p = (rel: string) => path.join(root, rel);
  const deep = `split-${'x'.repeat(60)}/${'y'.repeat(60)}`;
  const tooLong = `long/${'c'.repeat(200)}/${'e'.repeat(200)}`;
  await fs.mkdir(p('d'));
  await fs.mkdir(p(deep), { recursive: true });
  await fs.mkdir(path.dirname(p(tooLong)), { recursive: true });
  await fs.mkdir(p('opq'));
  await fs.writeFile(p('d/empty'), '');
  await fs.writeFile(p('d/block'), Buffer.alloc(512, 'a'));
  await fs.writeFile(p('d/block+1'), Buffer.alloc(513, 'b'));
  await fs.writeFile(p('d/text'), 'hello\n');
  await fs.link(p('d/text'), p('d/text.link'));
  await fs.symlink('text', p('d/sym'));
  await fs.symlink('t'.repeat(150), p('d/sym-long'));
  await fs.symlink('ü/target', p('d/sym-utf8'));
  await fs.writeFile(p(`${deep}/file`), 'split name');
  await fs.writeFile(p('n'.repeat(101)), 'no slash to split at');
  await fs.writeFile(p(tooLong), 'beyond prefix and name');
  await fs.writeFile(p('名前'), 'utf-8 name');
  await fs.writeFile(p('ids'), 'big ids');
  await fs.writeFile(p('old'), '');
  await fs.writeFile(p('future'), '');
  await fs.writeFile(p('opq/kept'), '');
  await makeNodes([
    { path: p('d/null'), type: 'char', major: 1, minor: 3, mode: 0o666 },
    { path: p('d/loop9'), type: 'block', major: 7, minor: 9, mode: 0o660 },
    { path: p('d/fifo'), type: 'fifo', major: 0, minor: 0, mode: 0o4600 },
    { path: p('gone'), type: 'char', major: 0, minor: 0, mode: 0 },
  ]);
  await fs.link(p('gone'), p('gone2'));
  await writeXattrs([
    { path: p('d'), name: 'user.dir', value: Buffer.from('1') },
    { path: p('d/text'), name: 'user.b', value: Buffer.from('second') },
    { path: p('d/text'), name: 'user.a', value: Buffer.from('first') },
    { path: p('d/text'), name: 'security.capability', value: Buffer.from('0100000200200000000000000000000000000000', 'hex') },
    { path: p('opq'), name: 'trusted.overlay.opaque', value: Buffer.from('y') },
    { path: p('opq'), name: 'trusted.overlay.origin', value: Buffer.from('o') },
  ]);
  await fs.chmod(p('d/text'), 0o4755);
  await fs.chmod(p('d/empty'), 0);
  await fs.chmod(p('opq'), 0o1777);
  await fs.chown(p('ids'), 3_000_000, 4_000_000);
  await fs.lchown(p('d/sym'), 5, 6);
  await setAllTimes(root, 1_600_000_000);
  // Node's utimes takes a negative time for "now"; touch sets it as given.
  await execa('touch', ['-d', '@-86401', p('old')]);
  await fs.utimes(p('future'), 2 ** 33, 2 ** 33);
  await fs.lutimes(p('gone'), 1_500_000_000, 1_500_000_000);
}

async function mount(opts: string, target: string): Promise<void> {
  await execa('mount', ['-t', 'overlay', 'overlay', '-o', opts, target]);
}

async function umount(target: string): Promise<void> {
  await execa('umount', [target], { reject: false });
}

/** What a process sees in a tree: kinds, modes, owners, contents, links, times, xattrs. */
async function describeTree(root: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    const rel = path.relative(root, p);
    if (rel !== '') {
      const rec: Record<string, unknown> = {
        kind: st.mode & 0o170000,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        rdev: st.rdev,
        mtime: Math.floor(st.mtimeMs / 1000),
      };
      if (st.isFile()) rec.sha = sha256(await fs.readFile(p));
      if (st.isSymbolicLink()) rec.target = await fs.readlink(p);
      out[rel] = rec;
    }
    if (st.isDirectory()) for (const n of (await fs.readdir(p)).sort()) await walk(path.join(p, n));
  };
  await walk(root);
  for (const [rel, attrs] of await readXattrsTree(root)) {
    out[`xattrs:${rel}`] = Object.fromEntries([...attrs].map(([k, v]) => [k, v.toString('hex')]));
  }
  return out;
}

// ---- tests --------------------------------------------------------------------------------

describe('writeLayerTar', () => {
  let work: string;
  beforeEach(async () => {
    work = await tempDir('strata-layer-');
  });
  afterEach(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  test('round trip: write, extract, write again gives identical bytes', async () => {
    const src = path.join(work, 'src');
    const dst = path.join(work, 'dst');
    await fs.mkdir(src);
    await fs.mkdir(dst);
    const tree = await buildRichTree(src);
    try {
      const first = await tarOf(src);
      expect((await tarOf(src)).equals(first)).toBe(true);
      await extractTar(Readable.from([first]), dst, { whiteouts: 'keep' });
      const second = await tarOf(dst);
      expect(await listTar(second)).toEqual(await listTar(first));
      expect(second.equals(first)).toBe(true);
      expect(await hashLayerTar(dst)).toEqual({ diffId: sha256(first), size: first.length });
    } finally {
      await tree.close();
    }
  });

  test('entries: order, names and headers', async () => {
    const src = path.join(work, 'src');
    await fs.mkdir(src);
    const tree = await buildRichTree(src);
    try {
      await fs.writeFile(path.join(src, 'B'), '');
      await fs.mkdir(path.join(src, 'a'));
      await fs.writeFile(path.join(src, 'a/x'), '');
      await fs.writeFile(path.join(src, 'a.b'), '');
      await fs.writeFile(path.join(src, 'b'), '');
      await setAllTimes(src, 1_600_000_000.9);
      const entries = await listTar(await tarOf(src));
      const names = entries.map((e) => e.name);
      expect(names).toEqual([
        'B',
        'a/',
        'a/x',
        'a.b',
        'b',
        'bin/',
        'bin/sgid',
        'bin/suid',
        'data/',
        'data/big',
        'data/binary-xattr',
        'data/empty',
        'data/xattr',
        'dev/',
        'dev/fifo',
        'dev/loop9',
        'dev/null',
        'etc/',
        'etc/conf',
        'etc/conf.hard',
        'etc/secret',
        'lib/',
        'lib/abs',
        'lib/dangling',
        'lib/rel',
        'long/',
        `long/${'n'.repeat(120)}`,
        'run/',
        'tmp/',
        'zz/',
        'zz/hard2',
        '名前.txt',
      ]);
      const byName = new Map(entries.map((e) => [e.name, e]));
      for (const e of entries) {
        expect([e.uname, e.gname]).toEqual(['', '']);
        expect(e.mtime).toBe(1_600_000_000); // whole seconds, floored
      }
      expect(byName.get('bin/suid')!.mode).toBe(0o4755);
      expect(byName.get('bin/suid')!.pax!['SCHILY.xattr.security.capability']).toEqual(Buffer.from('0100000200200000000000000000000000000000', 'hex'));
      expect(byName.get('data/binary-xattr')!.pax!['SCHILY.xattr.user.bin']).toEqual(BINARY_VALUE);
      expect([byName.get('bin/sgid')!.mode, byName.get('bin/sgid')!.uid, byName.get('bin/sgid')!.gid]).toEqual([0o2711, 1000, 50]);
      expect(byName.get('tmp/')!.mode).toBe(0o1777);
      expect(byName.get('tmp/')!.type).toBe('directory');
      expect([byName.get('etc/secret')!.mode, byName.get('etc/secret')!.uid]).toEqual([0, 1234]);
      expect(byName.get('etc/conf')).toMatchObject({ type: 'file', size: 4, uid: 7, gid: 8 });
      expect(byName.get('etc/conf.hard')).toMatchObject({ type: 'link', linkname: 'etc/conf', size: 0 });
      expect(byName.get('zz/hard2')).toMatchObject({ type: 'link', linkname: 'etc/conf' });
      expect(byName.get('lib/abs')).toMatchObject({ type: 'symlink', linkname: '/etc/conf' });
      expect(byName.get('lib/rel')).toMatchObject({ type: 'symlink', linkname: '../etc/conf', uid: 9, gid: 10 });
      expect(byName.get('dev/null')).toMatchObject({ type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 });
      expect(byName.get('dev/loop9')).toMatchObject({ type: 'block-device', devmajor: 7, devminor: 9 });
      expect(byName.get('dev/fifo')).toMatchObject({ type: 'fifo', mode: 0o600 });
      expect(byName.get('data/xattr')!.pax!['SCHILY.xattr.user.foo']).toEqual(Buffer.from('bar'));
      expect(byName.get('data/')!.pax!['SCHILY.xattr.user.dir']).toEqual(Buffer.from('1'));
      expect(byName.get('data/big')!.size).toBe(5 * 1024 * 1024 + 123);
      expect(byName.get('data/big')!.sha).toBe(sha256(await fs.readFile(path.join(src, 'data/big'))).slice(7));
    } finally {
      await tree.close();
    }
  });

  test('sourceDateEpoch clamps later mtimes only', async () => {
    await fs.writeFile(path.join(work, 'old'), '');
    await fs.writeFile(path.join(work, 'new'), '');
    await fs.utimes(path.join(work, 'old'), 100.5, 100.5);
    await fs.utimes(path.join(work, 'new'), 10_000, 10_000);
    const clamped = await listTar(await tarOf(work, { sourceDateEpoch: 5000 }));
    expect(clamped.map((e) => [e.name, e.mtime])).toEqual([
      ['new', 5000],
      ['old', 100],
    ]);
    const free = await hashLayerTar(work);
    const atEpoch = await hashLayerTar(work, { sourceDateEpoch: 5000 });
    expect(free.diffId).not.toBe(atEpoch.diffId);
    await expect(tarOf(work, { sourceDateEpoch: -1 })).rejects.toThrow(TypeError);
  });

  test('overlay whiteouts and opaque directories become OCI markers', async () => {
    const p = (rel: string) => path.join(work, rel);
    await fs.mkdir(p('opq'));
    await fs.writeFile(p('opq/-a'), '');
    await fs.writeFile(p('opq/b'), '');
    await fs.mkdir(p('notopq'));
    await makeNodes([{ path: p('gone'), type: 'char', major: 0, minor: 0, mode: 0 }]);
    await fs.link(p('gone'), p('gone2')); // the kernel shares one whiteout inode like this
    await fs.lchown(p('gone'), 1000, 1000);
    await writeXattrs([
      { path: work, name: 'trusted.overlay.uuid', value: randomBytes(16) },
      { path: p('opq'), name: 'trusted.overlay.opaque', value: Buffer.from('y') },
      { path: p('opq'), name: 'trusted.overlay.origin', value: Buffer.from([0, 0xfb, 0xff]) },
      { path: p('opq'), name: 'user.keep', value: Buffer.from('1') },
      { path: p('notopq'), name: 'trusted.overlay.opaque', value: Buffer.from('x') },
    ]);
    await setAllTimes(work, 9000);
    await fs.lutimes(p('gone'), 7000, 7000);
    const entries = await listTar(await tarOf(work, { sourceDateEpoch: 8000 }));
    expect(entries.map((e) => e.name)).toEqual(['.wh.gone', '.wh.gone2', 'notopq/', 'opq/', 'opq/-a', 'opq/.wh..wh..opq', 'opq/b']);
    for (const marker of [entries[0]!, entries[1]!, entries[5]!]) {
      expect(marker).toMatchObject({ type: 'file', size: 0, mode: 0, uid: 0, gid: 0, pax: null });
    }
    expect(entries[0]!.mtime).toBe(7000);
    expect(entries[5]!.mtime).toBe(8000); // the directory's, clamped
    expect(entries[3]!.pax).toEqual({ path: Buffer.from('opq/'), 'SCHILY.xattr.user.keep': Buffer.from('1') });
    expect(entries[2]!.pax).toBeNull();
  });

  test('a slow consumer receives every byte (backpressure)', async () => {
    await fs.writeFile(path.join(work, 'big'), randomBytes(8 * 1024 * 1024));
    const hash = createHash('sha256');
    let received = 0;
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        received += chunk.length;
        setImmediate(cb);
      },
    });
    const { size } = await writeLayerTar(work, slow);
    expect(received).toBe(size);
    expect(slow.writableFinished).toBe(true);
    expect(`sha256:${hash.digest('hex')}`).toBe((await hashLayerTar(work)).diffId);
  });

  test('a failing output rejects without hanging and is destroyed', async () => {
    await fs.writeFile(path.join(work, 'big'), randomBytes(4 * 1024 * 1024));
    let received = 0;
    const broken = new Writable({
      write(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        cb(received > 100_000 ? new Error('disk full') : null);
      },
    });
    await expect(writeLayerTar(work, broken)).rejects.toThrow('disk full');
    expect(broken.destroyed).toBe(true);
  });

  test('a missing snapshot rejects and destroys the output', async () => {
    const out = new Writable({ write: (_c, _e, cb) => cb() });
    await expect(writeLayerTar(path.join(work, 'missing'), out)).rejects.toThrow();
    expect(out.destroyed).toBe(true);
  });

  test('the bytes stay those of earlier versions (stored snapshots are hashed again at save)', async () => {
    await buildPinnedTree(work);
    expect(await hashLayerTar(work)).toEqual({
      diffId: 'sha256:cfa2b957efea4a80d0c59571027aa1d16fb17194484ffd2e1727c7a7cf02c8ba',
      size: 31232,
    });
    expect(await hashLayerTar(work, { sourceDateEpoch: 1_550_000_000 })).toEqual({
      diffId: 'sha256:1cc4bdf924e50b3a4b873dc14fdae010a1c5baee606f0efad295713764029c1f',
      size: 30208,
    });
  });

  test('security.capability set by setfattr: its 20 bytes in the tar, and back on disk after extraction', async () => {
    const src = path.join(work, 'src');
    const dst = path.join(work, 'dst');
    await fs.mkdir(src);
    await fs.mkdir(dst);
    // VFS_CAP_REVISION_2 with the effective flag: cap_net_raw permitted, as setcap marks
    // ping; cap_setgid and cap_net_bind_service, whose 0x80 byte is no UTF-8.
    const caps = { ping: '0100000200200000000000000000000000000000', server: '0100000280040000000000000000000000000000' };
    for (const [name, hex] of Object.entries(caps)) {
      await fs.writeFile(path.join(src, name), '#!/bin/sh\n', { mode: 0o755 });
      await execa('setfattr', ['-n', 'security.capability', '-v', `0x${hex}`, path.join(src, name)]);
    }
    const tar = await tarOf(src);
    const byName = new Map((await listTar(tar)).map((e) => [e.name, e]));
    for (const [name, hex] of Object.entries(caps)) {
      const value = byName.get(name)!.pax!['SCHILY.xattr.security.capability']!;
      expect(value.length).toBe(20);
      expect(value.toString('hex')).toBe(hex);
    }

    await extractTar(Readable.from([tar]), dst, { whiteouts: 'overlay' });
    for (const [name, hex] of Object.entries(caps)) {
      const { stdout } = await execa('getfattr', ['-e', 'hex', '-n', 'security.capability', path.join(dst, name)]);
      expect(stdout).toContain(`security.capability=0x${hex}`);
    }
    expect((await tarOf(dst)).equals(tar)).toBe(true);
  });

  test('names and symlink targets that are not UTF-8 are written as their bytes; extraction refuses them', async () => {
    const src = path.join(work, 'src');
    // One byte a character: '\xff' stays the byte 0xff (the temp dir's path is ASCII).
    const at = (dir: string, rel: string) => Buffer.from(`${dir}/${rel}`, 'latin1');
    await fs.mkdir(src);
    await fs.mkdir(at(src, 'bad\xff'));
    await fs.writeFile(at(src, 'bad\xff/f'), 'inside');
    await fs.symlink(Buffer.from('t\xfe', 'latin1'), at(src, 'link'));
    // 'ÿ' in UTF-8 is another name: the xattrs of bad\xff must not be taken for its.
    await fs.writeFile(path.join(src, 'ÿ'), '');
    await execa('sh', ['-c', `setfattr -n user.k -v 1 "$(printf '%s/bad\\377' "$SRC")"`], { env: { SRC: src } });
    const tar = await tarOf(src);

    const listed = await execa('tar', ['--quoting-style=literal', '-tvf', '-'], { input: tar, encoding: 'buffer' });
    const lines = Buffer.from(listed.stdout).toString('latin1').split('\n');
    for (const tail of [' bad\xff/', ' bad\xff/f', ' link -> t\xfe', ' \xc3\xbf']) {
      expect(lines.filter((l) => l.endsWith(tail))).toHaveLength(1);
    }

    const unpacked = path.join(work, 'gnu');
    await fs.mkdir(unpacked);
    await execa('tar', ['--xattrs', '--xattrs-include=*', '-xf', '-', '-C', unpacked], { input: tar });
    expect((await fs.readFile(at(unpacked, 'bad\xff/f'))).toString()).toBe('inside');
    expect(await fs.readlink(at(unpacked, 'link'), { encoding: 'buffer' })).toEqual(Buffer.from('t\xfe', 'latin1'));
    const attrs = await readXattrsTree(unpacked);
    expect(attrs.get('\0bad\xff')?.get('user.k')?.toString()).toBe('1');
    expect(attrs.has('ÿ')).toBe(false);
    expect((await tarOf(unpacked)).equals(tar)).toBe(true);

    const dst = path.join(work, 'dst');
    await fs.mkdir(dst);
    await expect(extractTar(Readable.from([tar]), dst, { whiteouts: 'keep' })).rejects.toMatchObject({
      code: 'TAR_UNSUPPORTED',
      message: expect.stringContaining('"bad\\xff/" is not valid UTF-8'),
    });
  });

  // 3 MiB is read in chunks by async calls, 4 KiB whole by synchronous ones: both must notice.
  test.each([
    ['shrinks', 3 * 1024 * 1024],
    ['grows', 3 * 1024 * 1024],
    ['shrinks', 4096],
    ['grows', 4096],
  ])('a file that %s while it is read fails the tar (%d bytes)', async (change, size) => {
    const file = path.join(work, 'f');
    await fs.writeFile(file, randomBytes(size));
    let changed = false;
    // highWaterMark 1: the writer waits for this first write (the header) before it reads on.
    const out = new Writable({
      highWaterMark: 1,
      write(_chunk: Buffer, _enc, cb) {
        if (changed) return cb();
        changed = true;
        (change === 'shrinks' ? fs.truncate(file, 1000) : fs.appendFile(file, 'more')).then(() => cb(), cb);
      },
    });
    await expect(writeLayerTar(work, out)).rejects.toMatchObject({
      code: 'LAYER_TAR_FAILED',
      message: expect.stringContaining(change === 'shrinks' ? 'shrank' : 'grew'),
    });
    expect(out.destroyed).toBe(true);
  });
});

describe('writeLayerTar of a real overlay upperdir', () => {
  test('whiteouts, opaque dir, no overlay xattrs; extracted it gives the same merged view', async () => {
    const base = await tempDir('strata-overlay-');
    const d = (rel: string) => path.join(base, rel);
    const mounted: string[] = [];
    try {
      for (const sub of ['lower', 'upper', 'work', 'merged', 'l2', 'view1', 'view2']) await fs.mkdir(d(sub));
      await fs.writeFile(d('lower/f1'), 'one');
      await fs.writeFile(d('lower/f2'), 'two');
      await fs.mkdir(d('lower/d/sub'), { recursive: true });
      await fs.writeFile(d('lower/d/x'), 'x');
      await fs.writeFile(d('lower/d/sub/y'), 'y');
      await fs.mkdir(d('lower/e'));
      await fs.writeFile(d('lower/e/y'), 'y');
      await fs.symlink('f2', d('lower/link'));

      await mount(`lowerdir=${d('lower')},upperdir=${d('upper')},workdir=${d('work')}`, d('merged'));
      mounted.push(d('merged'));
      await fs.rm(d('merged/f1'));
      await fs.rm(d('merged/link'));
      await fs.rm(d('merged/d'), { recursive: true });
      await fs.mkdir(d('merged/d'));
      await fs.writeFile(d('merged/d/new'), 'new');
      await fs.writeFile(d('merged/e/z'), 'z');
      await fs.chmod(d('merged/f2'), 0o600);
      await fs.writeFile(d('merged/top'), 'top');
      await writeXattrs([{ path: d('merged/top'), name: 'user.foo', value: Buffer.from('bar') }]);
      await umount(d('merged'));
      mounted.pop();

      const tar = await tarOf(d('upper'));
      const entries = await listTar(tar);
      const names = entries.map((e) => e.name);
      expect(names).toEqual(expect.arrayContaining(['.wh.f1', '.wh.link', 'd/', 'd/.wh..wh..opq', 'd/new', 'e/', 'e/z', 'f2', 'top']));
      expect(names).not.toContain('f1');
      expect(names.some((n) => n.startsWith('d/') && !['d/', 'd/.wh..wh..opq', 'd/new'].includes(n))).toBe(false);
      const paxKeys = entries.flatMap((e) => Object.keys(e.pax ?? {}));
      expect(paxKeys.some((k) => k.includes('trusted.overlay'))).toBe(false);
      expect(entries.find((e) => e.name === 'top')!.pax!['SCHILY.xattr.user.foo']).toEqual(Buffer.from('bar'));
      // The kernel did put its bookkeeping on the upperdir, so the filter was exercised.
      const upperAttrs = await readXattrsTree(d('upper'));
      expect([...upperAttrs.values()].some((m) => [...m.keys()].some((k) => k.startsWith('trusted.overlay.')))).toBe(true);

      await extractTar(Readable.from([tar]), d('l2'), { whiteouts: 'overlay' });
      // Unpacked the overlay way, the snapshot writes back to the very same tar.
      expect((await tarOf(d('l2'))).equals(tar)).toBe(true);

      await mount(`lowerdir=${d('upper')}:${d('lower')}`, d('view1'));
      mounted.push(d('view1'));
      await mount(`lowerdir=${d('l2')}:${d('lower')}`, d('view2'));
      mounted.push(d('view2'));
      const view = await describeTree(d('view2'));
      expect(view).toEqual(await describeTree(d('view1')));
      expect(
        Object.keys(view)
          .filter((k) => !k.startsWith('xattrs:'))
          .sort(),
      ).toEqual(['d', 'd/new', 'e', 'e/y', 'e/z', 'f2', 'top'].sort());
    } finally {
      for (const m of mounted.reverse()) await umount(m);
      await fs.rm(base, { recursive: true, force: true });
    }
  });
});
