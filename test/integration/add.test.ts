// ADD from URLs and git repositories. URL builds are compared with docker's classic builder
// against an HTTP server this file runs on 127.0.0.1 (dockerd runs on this host, so it
// reaches the server too; strata's builds need --allow network.host to reach this host's
// loopback); git sources, which the classic builder cannot ADD, are checked by running
// strata's image under docker.
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { strata } from '../helpers/cli.js';
import { classicBuild, filesystemListing, removeClassicLeftovers, strataBuildIntoDocker } from '../helpers/differential.js';
import { dockerRmi, dockerRun } from '../helpers/docker.js';
import { activityAttempts } from '../helpers/temporal.js';

const HELLO = 'hello over http\n';
/** The server is on this host's loopback: strata's builds need the right to reach it. */
const HOST = ['--allow', 'network.host'];
const LAST_MODIFIED = 'Sun, 09 Sep 2001 01:46:40 GMT'; // 1000000000
let archive: Buffer;
let server: http.Server;
let base: string;
const requests: string[] = [];

const dirs: string[] = [];
const images: string[] = [];

beforeAll(async () => {
  const src = await scratchDir();
  await fs.writeFile(path.join(src, 'inside.txt'), 'inside the archive\n');
  archive = (await execa('sh', ['-c', 'tar -C "$1" -cf - inside.txt | gzip -n', 'sh', src], { encoding: 'buffer' })).stdout as Buffer;
  server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    if (req.url === '/files/hello.txt') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Last-Modified': LAST_MODIFIED });
      res.end(HELLO);
    } else if (req.url === '/files/archive.tar.gz') {
      res.writeHead(200, { 'Content-Type': 'application/gzip' });
      res.end(archive);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not here\n');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  if (images.length) await dockerRmi(...images);
  await removeClassicLeftovers();
});

async function scratchDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-add-'));
  dirs.push(dir);
  return dir;
}

async function contextWith(dockerfile: string): Promise<string> {
  const ctx = await scratchDir();
  await fs.writeFile(path.join(ctx, 'Dockerfile'), dockerfile);
  return ctx;
}

describe('ADD of a URL', () => {
  test('downloads as the classic builder does: name from the URL, mode 0600, never extracted, Last-Modified as mtime', async () => {
    const ctx = await contextWith(
      [
        'FROM strata-test-busybox',
        `ADD ${base}/files/hello.txt /downloads/`,
        `ADD ${base}/files/archive.tar.gz /downloads/`,
        `ADD ${base}/files/hello.txt /named.txt`,
        `ADD --chown=1:1 ${base}/files/hello.txt /owned/`,
        '',
      ].join('\n'),
    );
    const ours = await strataBuildIntoDocker(ctx, HOST);
    images.push(ours);
    const theirs = await classicBuild(ctx);
    images.push(theirs);
    const [mine, docker] = await Promise.all([filesystemListing(ours), filesystemListing(theirs)]);
    expect(mine).toEqual(docker);
    expect(mine).toContain(`/downloads/hello.txt file 0600 0:0 sha256:${createHash('sha256').update(HELLO).digest('hex')}`);
    expect(mine).toContain(`/downloads/archive.tar.gz file 0600 0:0 sha256:${createHash('sha256').update(archive).digest('hex')}`);
    expect(mine).toContain(`/owned/hello.txt file 0600 1:1 sha256:${createHash('sha256').update(HELLO).digest('hex')}`);
    expect(await dockerRun(ours, ['stat', '-c', '%Y', '/named.txt', '/downloads/hello.txt'])).toBe('1000000000\n1000000000');
  });

  test('--checksum that matches builds; one that does not fails naming the step', async () => {
    const good = createHash('sha256').update(HELLO).digest('hex');
    const ctx = await contextWith(`FROM strata-test-busybox\nADD --checksum=sha256:${good} ${base}/files/hello.txt /hello.txt\n`);
    const ours = await strataBuildIntoDocker(ctx, HOST);
    images.push(ours);
    expect(await dockerRun(ours, ['cat', '/hello.txt'])).toBe(HELLO.trimEnd());

    const bad = 'ab'.repeat(32);
    const badCtx = await contextWith(`FROM strata-test-busybox\nADD --checksum=sha256:${bad} ${base}/files/hello.txt /hello.txt\n`);
    const r = await strata(['build', ...HOST, badCtx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`Step 2/2 : ADD --checksum=sha256:${bad} ${base}/files/hello.txt /hello.txt (line 2)`);
    expect(r.stderr).toContain(`expected sha256:${bad}, got sha256:${good}`);
  });

  test('an HTTP 404 fails naming the step and the URL, without retries', async () => {
    const url = `${base}/files/missing.txt`;
    const ctx = await contextWith(`FROM strata-test-busybox\nADD ${url} /x\n`);
    const before = requests.filter((u) => u === '/files/missing.txt').length;
    const r = await strata(['build', ...HOST, ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`Step 2/2 : ADD ${url} /x (line 2)`);
    expect(r.stderr).toContain(`download ${url}: HTTP 404`);
    const workflowId = /workflows\/(build-[0-9a-f]+)/.exec(r.stderr)![1]!;
    expect((await activityAttempts(workflowId)).filter((a) => a.type === 'copyStep')).toEqual([{ type: 'copyStep', attempt: 1 }]);
    expect(requests.filter((u) => u === '/files/missing.txt').length - before).toBe(1);
  });
});

describe('ADD of a git repository', () => {
  let repoUrl: string;
  let tagCommit: string;

  beforeAll(async () => {
    const root = await scratchDir();
    const bare = path.join(root, 'repo.git');
    const work = path.join(root, 'work');
    const git = (cwd: string, ...args: string[]) => execa('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', '-c', 'init.defaultBranch=main', ...args], { cwd });
    await git(root, 'init', '-q', '--bare', bare);
    await git(root, 'init', '-q', work);
    await fs.mkdir(path.join(work, 'sub'));
    await fs.writeFile(path.join(work, 'a.txt'), 'tagged\n');
    await fs.writeFile(path.join(work, 'sub', 'b.txt'), 'in sub\n');
    await fs.writeFile(path.join(work, 'sub', 'run.sh'), '#!/bin/sh\necho ran\n', { mode: 0o755 });
    await git(work, 'add', '.');
    await git(work, 'commit', '-q', '-m', 'first');
    await git(work, 'tag', '-a', 'v1', '-m', 'v1');
    tagCommit = (await git(work, 'rev-parse', 'HEAD')).stdout.trim();
    await fs.writeFile(path.join(work, 'a.txt'), 'main tip\n');
    await git(work, 'commit', '-q', '-am', 'second');
    await git(work, 'checkout', '-q', '-b', 'feature');
    await fs.writeFile(path.join(work, 'feature.txt'), 'feature\n');
    await git(work, 'add', '.');
    await git(work, 'commit', '-q', '-m', 'feature');
    await git(work, 'push', '-q', bare, 'main', 'feature', 'v1');
    repoUrl = `file://${bare}`;
  });

  test('a tag, a branch with a subdir, a commit and the default branch; .git only with --keep-git-dir', async () => {
    const ctx = await contextWith(
      [
        'FROM strata-test-busybox',
        `ADD ${repoUrl}#v1 /at-tag`,
        `ADD ${repoUrl}#main:sub /sub-only/`,
        `ADD ${repoUrl}#${tagCommit} /at-commit`,
        `ADD ${repoUrl} /default`,
        `ADD --keep-git-dir=true ${repoUrl}#feature /kept`,
        '',
      ].join('\n'),
    );
    const ours = await strataBuildIntoDocker(ctx);
    images.push(ours);
    const script = [
      'cat /at-tag/a.txt /at-commit/a.txt /default/a.txt /kept/a.txt /kept/feature.txt',
      'ls -a /at-tag /sub-only',
      '/sub-only/run.sh',
      'test -f /kept/.git/HEAD && echo kept has .git',
      'test -e /at-tag/.git || echo at-tag has no .git',
      'test -e /default/feature.txt || echo default is main',
    ].join('; ');
    expect(await dockerRun(ours, ['sh', '-c', script])).toBe(
      [
        'tagged',
        'tagged',
        'main tip',
        'main tip',
        'feature',
        '/at-tag:',
        '.',
        '..',
        'a.txt',
        'sub',
        '',
        '/sub-only:',
        '.',
        '..',
        'b.txt',
        'run.sh',
        'ran',
        'kept has .git',
        'at-tag has no .git',
        'default is main',
      ].join('\n'),
    );
  });

  test('a ref the repository does not have fails naming the step, without retries', async () => {
    const ctx = await contextWith(`FROM strata-test-busybox\nADD ${repoUrl}#no-such-branch /x\n`);
    const r = await strata(['build', ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`Step 2/2 : ADD ${repoUrl}#no-such-branch /x (line 2)`);
    expect(r.stderr).toMatch(/ADD failed: git .*#no-such-branch: .*couldn't find remote ref no-such-branch/);
    const workflowId = /workflows\/(build-[0-9a-f]+)/.exec(r.stderr)![1]!;
    expect((await activityAttempts(workflowId)).filter((a) => a.type === 'copyStep')).toEqual([{ type: 'copyStep', attempt: 1 }]);
  });
});

describe('ADD of a local archive the filesystem or the decompressor refuses', () => {
  /** A context whose `evil` file is made by `make(dir)`; the build ADDs it at /. */
  async function addArchive(make: (file: string) => Promise<void>): Promise<{ stderr: string; attempts: number[] }> {
    const ctx = await contextWith('FROM strata-test-busybox\nADD evil /\n');
    await make(path.join(ctx, 'evil'));
    const r = await strata(['build', ctx]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('Step 2/2 : ADD evil / (line 2)');
    // The store's paths are the worker's business, not the user's.
    expect(r.stderr).not.toContain(process.env.STRATA_HOME!);
    const workflowId = /workflows\/(build-[0-9a-f]+)/.exec(r.stderr)![1]!;
    const attempts = (await activityAttempts(workflowId)).filter((a) => a.type === 'copyStep').map((a) => a.attempt);
    return { stderr: r.stderr, attempts };
  }

  const python = (script: string, file: string) => execa('python3', ['-c', script, file]);

  test('a name longer than the filesystem takes (ENAMETOOLONG) fails at once, naming the path in the image', async () => {
    const { stderr, attempts } = await addArchive((file) =>
      python(
        "import sys, tarfile, io\nt = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)\ni = tarfile.TarInfo('dir/' + 'n' * 300)\nt.addfile(i, io.BytesIO(b''))\nt.close()",
        file,
      ).then(() => undefined),
    );
    expect(stderr).toMatch(/: (open|lstat) \/dir\/n{100,}.*: name too long \(ENAMETOOLONG\)/);
    expect(attempts).toEqual([1]);
  });

  test('a truncated gzip fails at once as damaged data', async () => {
    const { stderr, attempts } = await addArchive(async (file) => {
      await python(
        "import sys, tarfile, io, os\nt = tarfile.open(sys.argv[1] + '.tar', 'w')\nd = os.urandom(200000)\ni = tarfile.TarInfo('big')\ni.size = len(d)\nt.addfile(i, io.BytesIO(d))\nt.close()",
        file,
      );
      const gz = (await execa('gzip', ['-c', '-n', `${file}.tar`], { encoding: 'buffer' })).stdout as Buffer;
      await fs.writeFile(file, gz.subarray(0, gz.length >> 1));
      await fs.rm(`${file}.tar`);
    });
    expect(stderr).toMatch(/decompress: the gzip data is damaged or truncated|the archive is truncated/);
    expect(attempts).toEqual([1]);
  });

  test('a truncated zstd fails at once', async () => {
    const { attempts } = await addArchive(async (file) => {
      await python(
        "import sys, tarfile, io, os\nt = tarfile.open(sys.argv[1] + '.tar', 'w')\nd = os.urandom(200000)\ni = tarfile.TarInfo('big')\ni.size = len(d)\nt.addfile(i, io.BytesIO(d))\nt.close()",
        file,
      );
      const zst = (await execa('zstd', ['-q', '-c', `${file}.tar`], { encoding: 'buffer' })).stdout as Buffer;
      await fs.writeFile(file, zst.subarray(0, zst.length >> 1));
      await fs.rm(`${file}.tar`);
    });
    expect(attempts).toEqual([1]);
  });
});
