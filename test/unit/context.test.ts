// The build context: .dockerignore by docker's rules (a table over one tree), and the packed tar
// (deterministic bytes, depth-first sorted entries, owners 0:0, modes and symlinks kept).
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tarStream from 'tar-stream';
import { makeFilter, packContext, readDockerignore } from '../../engine/context/pack.js';

// ---- helpers ------------------------------------------------------------------------------

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-context-'));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const d of tempDirs) await fs.rm(d, { recursive: true, force: true });
});

/** Creates `entries` under root: `dir/` is a directory, anything else a file holding its own name. */
async function makeTree(root: string, entries: string[]): Promise<void> {
  for (const e of entries) {
    const p = path.join(root, e);
    if (e.endsWith('/')) await fs.mkdir(p, { recursive: true });
    else {
      await fs.mkdir(path.dirname(p), { recursive: true });
      await fs.writeFile(p, `content of ${e}\n`);
    }
  }
}

/** The packed context of `dir` under `patterns`, as bytes. */
async function pack(dir: string, patterns: string[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of packContext(dir, makeFilter(patterns))) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

interface Entry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtime: number;
  linkname: string | null;
  body: string;
}

async function listTar(tar: Buffer): Promise<Entry[]> {
  const out: Entry[] = [];
  const extract = tarStream.extract();
  extract.end(tar);
  for await (const entry of extract) {
    const h = entry.header;
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({
      name: h.name,
      type: h.type ?? 'file',
      mode: h.mode ?? 0,
      uid: h.uid ?? -1,
      gid: h.gid ?? -1,
      uname: h.uname ?? '',
      gname: h.gname ?? '',
      mtime: (h.mtime?.getTime() ?? 0) / 1000,
      linkname: h.linkname ?? null,
      body: Buffer.concat(chunks).toString(),
    });
  }
  return out;
}

const names = async (tar: Buffer) => (await listTar(tar)).map((e) => e.name);

/** Sets every mtime under `root` (children before their directory) to `t` seconds. */
async function setAllTimes(root: string, t: number): Promise<void> {
  const walk = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    if (st.isDirectory()) for (const n of await fs.readdir(p)) await walk(path.join(p, n));
    await fs.lutimes(p, t, t);
  };
  await walk(root);
}

// ---- .dockerignore: one tree, one row per .dockerignore ----------------------------------

const TREE = [
  'Dockerfile',
  'README.md',
  'a.tmp',
  'app/main.js',
  'app/cache.tmp',
  'app/deep/x.tmp',
  'docs/guide.md',
  'logs/a.log',
  'logs/keep.log',
  'logs/sub/b.log',
  'node_modules/pkg/index.js',
];
/** The whole tree packed, .dockerignore included, in tar order. */
const ALL = [
  '.dockerignore',
  'Dockerfile',
  'README.md',
  'a.tmp',
  'app/',
  'app/cache.tmp',
  'app/deep/',
  'app/deep/x.tmp',
  'app/main.js',
  'docs/',
  'docs/guide.md',
  'logs/',
  'logs/a.log',
  'logs/keep.log',
  'logs/sub/',
  'logs/sub/b.log',
  'node_modules/',
  'node_modules/pkg/',
  'node_modules/pkg/index.js',
];

interface IgnoreRow {
  name: string;
  dockerignore: string;
  /** Expected: the whole tree without these entries… */
  without?: string[];
  /** …or exactly these. */
  only?: string[];
}

const ignoreRows: IgnoreRow[] = [
  { name: '(empty)', dockerignore: '', without: [] },
  {
    name: 'node_modules (a directory and all under it)',
    dockerignore: 'node_modules\n',
    without: ['node_modules/', 'node_modules/pkg/', 'node_modules/pkg/index.js'],
  },
  { name: 'logs/ (trailing slash)', dockerignore: 'logs/\n', without: ['logs/', 'logs/a.log', 'logs/keep.log', 'logs/sub/', 'logs/sub/b.log'] },
  { name: '*.md (only at the root: * does not cross /)', dockerignore: '*.md\n', without: ['README.md'] },
  { name: 'README.md (a plain name matches at the root only)', dockerignore: 'guide.md\nREADME.md\n', without: ['README.md'] },
  { name: 'logs/*.log (one level, not logs/sub/b.log)', dockerignore: 'logs/*.log\n', without: ['logs/a.log', 'logs/keep.log'] },
  { name: '**/*.tmp (any depth, the root too)', dockerignore: '**/*.tmp\n', without: ['a.tmp', 'app/cache.tmp', 'app/deep/x.tmp'] },
  {
    name: 'logs + !logs/keep.log (re-included file; its directory entry kept)',
    dockerignore: 'logs\n!logs/keep.log\n',
    without: ['logs/a.log', 'logs/sub/', 'logs/sub/b.log'],
  },
  {
    name: 'logs + !logs/sub/b.log (re-included two levels down; both directories kept)',
    dockerignore: 'logs\n!logs/sub/b.log\n',
    without: ['logs/a.log', 'logs/keep.log'],
  },
  {
    name: 'node_modules + !logs/keep.log (an exception elsewhere brings nothing back)',
    dockerignore: 'node_modules\n!logs/keep.log\n',
    without: ['node_modules/', 'node_modules/pkg/', 'node_modules/pkg/index.js'],
  },
  {
    name: '* + !app (everything but app)',
    dockerignore: '*\n!app\n',
    only: ['app/', 'app/cache.tmp', 'app/deep/', 'app/deep/x.tmp', 'app/main.js'],
  },
  { name: '*.md + !README.md (the last match wins)', dockerignore: '*.md\n!README.md\n', without: [] },
  { name: '!README.md + *.md (the last match wins)', dockerignore: '!README.md\n*.md\n', without: ['README.md'] },
  {
    name: 'comments and blank lines (# app is not a pattern)',
    dockerignore: '# app\n\n   \n  # node_modules\nREADME.md  \n\t\n',
    without: ['README.md'],
  },
  { name: 'CRLF lines', dockerignore: 'a.tmp\r\nREADME.md\r\n', without: ['README.md', 'a.tmp'] },
  {
    name: '/app and /docs/guide.md (leading slash = context root)',
    dockerignore: '/app\n/docs/guide.md\n',
    without: ['app/', 'app/cache.tmp', 'app/deep/', 'app/deep/x.tmp', 'app/main.js', 'docs/guide.md'],
  },
  {
    name: './node_modules and ./a.tmp (./ prefix)',
    dockerignore: './node_modules\n./a.tmp\n',
    without: ['a.tmp', 'node_modules/', 'node_modules/pkg/', 'node_modules/pkg/index.js'],
  },
  { name: 'app/deep/../main.js (cleaned like a path)', dockerignore: 'app/deep/../main.js\n', without: ['app/main.js'] },
];

describe('.dockerignore', () => {
  test.each(ignoreRows)('$name', async (row) => {
    const ctx = await tempDir();
    await makeTree(ctx, TREE);
    await fs.writeFile(path.join(ctx, '.dockerignore'), row.dockerignore);
    const tar = await pack(ctx, await readDockerignore(ctx));
    const want = row.only ?? ALL.filter((n) => !row.without!.includes(n));
    expect(await names(tar)).toEqual(want);
  });
});

describe('readDockerignore', () => {
  test('comments, blank lines and surrounding blanks dropped; a missing file gives []', async () => {
    const ctx = await tempDir();
    expect(await readDockerignore(ctx)).toEqual([]);
    await fs.writeFile(path.join(ctx, '.dockerignore'), '\ufeff# c\n  a  \r\n\n\t!b\n#d\n c/*.log\n');
    expect(await readDockerignore(ctx)).toEqual(['a', '!b', 'c/*.log']);
  });

  test('app.Dockerfile.dockerignore next to the Dockerfile wins over .dockerignore', async () => {
    const ctx = await tempDir();
    await fs.writeFile(path.join(ctx, '.dockerignore'), 'from-dockerignore\n');
    const dockerfile = path.join(ctx, 'app.Dockerfile');
    // Absent: .dockerignore applies.
    expect(await readDockerignore(ctx, dockerfile)).toEqual(['from-dockerignore']);
    await fs.writeFile(`${dockerfile}.dockerignore`, 'from-app\n');
    expect(await readDockerignore(ctx, dockerfile)).toEqual(['from-app']);
    // Without a Dockerfile name only .dockerignore counts.
    expect(await readDockerignore(ctx)).toEqual(['from-dockerignore']);
  });

  test('a Dockerfile outside the context: its NAME.dockerignore is read from beside it', async () => {
    const ctx = await tempDir();
    const elsewhere = await tempDir();
    await fs.writeFile(path.join(ctx, '.dockerignore'), 'from-context\n');
    await fs.writeFile(path.join(elsewhere, 'Dockerfile.dockerignore'), 'from-beside\n');
    expect(await readDockerignore(ctx, path.join(elsewhere, 'Dockerfile'))).toEqual(['from-beside']);
  });
});

// ---- the tar ------------------------------------------------------------------------------

describe('packContext', () => {
  test('the same tree, created in opposite orders, packs to identical bytes (twice each)', async () => {
    const entries = ['z/', 'z/b', 'z/a', 'm', 'a/c/d', 'a/b', 'B', '_'];
    const one = await tempDir();
    const two = await tempDir();
    await makeTree(one, entries);
    await makeTree(two, [...entries].reverse());
    for (const root of [one, two]) {
      await fs.symlink('m', path.join(root, 'link'));
      await setAllTimes(root, 1_700_000_000);
    }
    const a1 = await pack(one, []);
    const a2 = await pack(one, []);
    const b = await pack(two, []);
    expect(a1.length).toBeGreaterThan(0);
    expect(a2.equals(a1)).toBe(true);
    expect(b.equals(a1)).toBe(true);
  });

  test('entries come depth-first, siblings in byte order (a/ and its children before a-b and a.txt)', async () => {
    const ctx = await tempDir();
    await makeTree(ctx, ['a.txt', 'é', '_x', 'B', 'a/b', 'a/A', 'a-b']);
    expect(await names(await pack(ctx, []))).toEqual(['B', '_x', 'a/', 'a/A', 'a/b', 'a-b', 'a.txt', 'é']);
  });

  test('owners become 0:0 with no names; modes, mtimes and contents are kept', async () => {
    const ctx = await tempDir();
    await makeTree(ctx, ['run.sh', 'secret', 'suid', 'private/f']);
    // chown first: it clears the set-uid bit.
    for (const n of ['run.sh', 'secret', 'suid', 'private', 'private/f']) await fs.lchown(path.join(ctx, n), 1000, 1001);
    await fs.chmod(path.join(ctx, 'run.sh'), 0o755);
    await fs.chmod(path.join(ctx, 'secret'), 0o600);
    await fs.chmod(path.join(ctx, 'suid'), 0o4755);
    await fs.chmod(path.join(ctx, 'private'), 0o700);
    await fs.chmod(path.join(ctx, 'private/f'), 0o644);
    await setAllTimes(ctx, 1_600_000_000.75);
    const got = await listTar(await pack(ctx, []));
    const pick = (e: Entry) => ({ name: e.name, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname, mtime: e.mtime, body: e.body });
    const common = { uid: 0, gid: 0, uname: '', gname: '', mtime: 1_600_000_000 };
    expect(got.map(pick)).toEqual([
      { name: 'private/', type: 'directory', mode: 0o700, ...common, body: '' },
      { name: 'private/f', type: 'file', mode: 0o644, ...common, body: 'content of private/f\n' },
      { name: 'run.sh', type: 'file', mode: 0o755, ...common, body: 'content of run.sh\n' },
      { name: 'secret', type: 'file', mode: 0o600, ...common, body: 'content of secret\n' },
      { name: 'suid', type: 'file', mode: 0o4755, ...common, body: 'content of suid\n' },
    ]);
  });

  test('symlinks stay symlinks (to a file, to a directory, dangling, absolute); a fifo is left out', async () => {
    const ctx = await tempDir();
    await makeTree(ctx, ['dir/f', 'target.txt']);
    await fs.symlink('target.txt', path.join(ctx, 'link'));
    await fs.symlink('dir', path.join(ctx, 'dirlink'));
    await fs.symlink('../nowhere', path.join(ctx, 'dangling'));
    await fs.symlink('/etc/passwd', path.join(ctx, 'abs'));
    execFileSync('mkfifo', [path.join(ctx, 'fifo')]);
    const got = await listTar(await pack(ctx, []));
    expect(got.map((e) => [e.name, e.type, e.linkname ?? '', e.body])).toEqual([
      ['abs', 'symlink', '/etc/passwd', ''],
      ['dangling', 'symlink', '../nowhere', ''],
      ['dir/', 'directory', '', ''],
      ['dir/f', 'file', '', 'content of dir/f\n'],
      ['dirlink', 'symlink', 'dir', ''],
      ['link', 'symlink', 'target.txt', ''],
      ['target.txt', 'file', '', 'content of target.txt\n'],
    ]);
  });

  test('a symlink and a file re-included under an excluded directory keep their kinds and contents', async () => {
    const ctx = await tempDir();
    await makeTree(ctx, ['vendor/keep/a.txt', 'vendor/drop.txt']);
    await fs.symlink('a.txt', path.join(ctx, 'vendor/keep/link'));
    await fs.chmod(path.join(ctx, 'vendor/keep/a.txt'), 0o640);
    await fs.chmod(path.join(ctx, 'vendor'), 0o751);
    await fs.chmod(path.join(ctx, 'vendor/keep'), 0o705);
    const got = await listTar(await pack(ctx, ['vendor', '!vendor/keep']));
    expect(got.map((e) => [e.name, e.type, e.mode, e.linkname ?? '', e.body])).toEqual([
      ['vendor/', 'directory', 0o751, '', ''],
      ['vendor/keep/', 'directory', 0o705, '', ''],
      ['vendor/keep/a.txt', 'file', 0o640, '', 'content of vendor/keep/a.txt\n'],
      ['vendor/keep/link', 'symlink', expect.any(Number), 'a.txt', ''],
    ]);
  });
});
