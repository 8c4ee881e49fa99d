// The instruction cache and the store's GC, through the CLI, the dev server and real workers:
// a rebuild that changes nothing runs no step (its history shows only the plan, the look-up and
// the commit) and gives the same image; a changed input misses from its step on; --no-cache and
// --no-cache-filter; a hit after a worker restart; builder prune and STRATA_CACHE_MAX free what
// nothing uses and keep what images and running builds hold.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';
import { findContainer, until } from '../helpers/host.js';
import { activityAttempts, stepStarts } from '../helpers/temporal.js';
import { startTestWorker, type TestWorker } from '../helpers/worker.js';

const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function makeContext(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-cache-'));
  cleanups.push(() => fs.rm(dir, { recursive: true, force: true }));
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), content);
  return dir;
}

const buildIdOf = (stdout: string) => /Build ID: (\S+)/.exec(stdout)![1]!;
const imageIdOf = (stdout: string) => /Successfully built ([0-9a-f]{12})/.exec(stdout)![1]!;

async function build(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; id: string; image: string }> {
  const r = await strataOk(['build', ...args], { env: { ...EPOCH, ...env } });
  return { stdout: r.stdout, id: buildIdOf(r.stdout), image: imageIdOf(r.stdout) };
}

/** Step numbers whose activity ran in the build. */
async function ran(workflowId: string): Promise<number[]> {
  return [...(await stepStarts(workflowId)).keys()].sort((a, b) => a - b);
}

/** A marker that keeps this test's steps apart from every other test's cache entries. */
const mark = () => randomBytes(4).toString('hex');

describe('instruction cache', () => {
  test('a rebuild that changes nothing runs no step: only the plan, the look-up and the commit; same image; "Using cache" per step', async () => {
    const m = mark();
    const ctx = await makeContext({
      Dockerfile: `FROM busybox\nARG V=1\nRUN echo ${m} > /m\nCOPY a.txt /a.txt\nENV X=1\nWORKDIR /w\nRUN cat /a.txt > b && echo $V >> b\nCMD ["cat", "/w/b"]\n`,
      'a.txt': 'a\n',
    });
    const first = await build(['-t', `cache-${m}:1`, ctx]);
    expect(first.stdout).not.toContain('Using cache');
    const second = await build(['-t', `cache-${m}:1`, ctx]);
    expect(second.image).toBe(first.image);
    const types = (await activityAttempts(second.id)).map((a) => a.type);
    expect(types).toEqual(['planBuild', 'lookupCache', 'commitImage']);
    // Steps 2…8 each say so, as docker's classic builder prints a hit, then the step's image.
    expect(second.stdout.match(/^ ---> Using cache$/gm)).toHaveLength(7);
    const ids: string[] = [];
    for (let n = 2; n <= 8; n++) ids.push(new RegExp(`Step ${n}/8 : .*\\n ---> Using cache\\n ---> ([0-9a-f]{12}) \\([\\d.]+s\\)\\n`).exec(second.stdout)![1]!);
    // Each is an image of the store, as of its step (X is set at step 5); the last is the build's.
    const env = async (id: string) => (JSON.parse((await strataOk(['inspect', id])).stdout) as { Config: { Env: string[] } }[])[0]!.Config.Env;
    expect(await env(ids[1]!)).not.toContain('X=1');
    expect(await env(ids[3]!)).toContain('X=1');
    expect(second.image).toContain(ids[6]!);
    // The image is whole: it runs under docker's eyes as the first did (its files are there).
    const out = path.join(ctx, 'out.tar');
    await strataOk(['save', '-o', out, `cache-${m}:1`]);
    expect((await execa('tar', ['-tf', out])).stdout.length).toBeGreaterThan(0);
  });

  test('a changed COPY source misses from the COPY on; the steps before it hit', async () => {
    const m = mark();
    const ctx = await makeContext({ Dockerfile: `FROM busybox\nRUN echo ${m} > /m\nCOPY a.txt /a\nENV E=1\nRUN cat /a > /b\nRUN echo done\n`, 'a.txt': 'one\n' });
    await build([ctx]);
    await fs.writeFile(path.join(ctx, 'a.txt'), 'two\n');
    const second = await build([ctx]);
    expect(await ran(second.id)).toEqual([3, 5, 6]);
    expect(second.stdout).toMatch(/Step 2\/6 : RUN echo \w+ > \/m\n ---> Using cache\n/);
    // The mtime alone is no change.
    await fs.utimes(path.join(ctx, 'a.txt'), 1, 1);
    expect(await ran((await build([ctx])).id)).toEqual([]);
  });

  test('a build arg a RUN uses misses from that RUN on; one no instruction uses changes nothing', async () => {
    const m = mark();
    const ctx = await makeContext({ Dockerfile: `FROM busybox\nRUN echo ${m} > /m\nARG V=1\nRUN echo $V > /v\nRUN echo after\n` });
    await build([ctx]);
    expect(await ran((await build(['--build-arg', 'UNUSED=1', ctx])).id)).toEqual([]);
    expect(await ran((await build(['--build-arg', 'V=2', ctx])).id)).toEqual([4, 5]);
  });

  test('a base image imported again under the same tag (another digest) misses from the first step on', async () => {
    const m = mark();
    const base = `cache-base-${m}:1`;
    const tar = process.env.STRATA_TEST_BUSYBOX_TAR!;
    await strataOk(['import', '--change', 'ENV BASE=1', tar, base]);
    const ctx = await makeContext({ Dockerfile: `FROM ${base}\nRUN echo ${m} > /m\nRUN echo two\n` });
    await build([ctx]);
    expect(await ran((await build([ctx])).id)).toEqual([]);
    await strataOk(['import', '--change', 'ENV BASE=2', tar, base]);
    expect(await ran((await build([ctx])).id)).toEqual([2, 3]);
  });

  test("without SOURCE_DATE_EPOCH a cached rebuild ends with the same image ID, as the classic builder's; --no-cache makes a new one", async () => {
    const m = mark();
    const ctx = await makeContext({ Dockerfile: `FROM busybox\nENV M=${m}\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b\nLABEL l=1\n`, 'a.txt': 'a\n' });
    const plain = async (args: string[]) => imageIdOf((await strataOk(['build', ...args, ctx])).stdout);
    const first = await plain([]);
    await new Promise((r) => setTimeout(r, 1100)); // a new image would have another created time
    expect(await plain([])).toBe(first);
    expect(await plain(['--no-cache'])).not.toBe(first);
  });

  test('--no-cache runs every step; --no-cache-filter only the named stage (another stage still hits)', async () => {
    const m = mark();
    const ctx = await makeContext({
      Dockerfile: `FROM busybox AS a\nRUN echo a-${m} > /a\nFROM busybox\nRUN echo b-${m} > /b\nCOPY --from=a /a /a\nRUN cat /a /b\n`,
    });
    const first = await build([ctx]);
    const all = await build(['--no-cache', ctx]);
    expect(await ran(all.id)).toEqual([2, 4, 5, 6]);
    expect(all.stdout).not.toContain('Using cache');
    expect(all.image).toBe(first.image); // SOURCE_DATE_EPOCH: the same steps make the same layers
    const filtered = await build(['--no-cache-filter', 'a', ctx]);
    expect(await ran(filtered.id)).toEqual([2]);
    expect(filtered.image).toBe(first.image);
    expect(await ran((await build(['--no-cache-filter', '1', ctx])).id)).toEqual([4, 5, 6]);
    const typo = await strata(['build', '--no-cache-filter', 'nosuch', ctx]);
    expect(typo.exitCode).not.toBe(0);
    expect(typo.stderr).toContain('--no-cache-filter nosuch: no such stage');
  });

  test('removing the image of a --no-cache build keeps the cache of the build before it', async () => {
    const m = mark();
    // A step whose layer differs each time it runs: --no-cache makes other layers.
    const ctx = await makeContext({ Dockerfile: `FROM busybox\nRUN echo ${m} > /m && head -c 16 /dev/urandom > /r\nRUN cat /m\n` });
    const first = await build(['-t', `keep-${m}:a`, ctx]);
    const again = await build(['--no-cache', '-t', `keep-${m}:b`, ctx]);
    expect(again.image).not.toBe(first.image);
    await strataOk(['rmi', `keep-${m}:b`]);
    const rebuilt = await build(['-t', `keep-${m}:a`, ctx]);
    expect(await ran(rebuilt.id)).toEqual([]);
    expect(rebuilt.image).toBe(first.image);
  });

  test('COPY --from a stage whose content changed misses; the steps before it hit', async () => {
    const m = mark();
    const ctx = await makeContext({
      Dockerfile: `FROM busybox AS src\nCOPY a.txt /a\nFROM busybox\nRUN echo ${m} > /m\nCOPY --from=src /a /a\nRUN cat /a\n`,
      'a.txt': 'one\n',
    });
    await build([ctx]);
    await fs.writeFile(path.join(ctx, 'a.txt'), 'two\n');
    // Stage src's COPY, then the final stage's COPY --from and what follows; its first RUN hits.
    expect(await ran((await build([ctx])).id)).toEqual([2, 5, 6]);
  });

  test('RUN --mount=type=bind from the context: a change in the mounted file misses that RUN; a change elsewhere does not', async () => {
    const m = mark();
    const ctx = await makeContext({
      Dockerfile: `FROM busybox\nRUN echo ${m} > /m\nRUN --mount=type=bind,source=in.txt,target=/in cat /in > /out\nRUN echo after\n`,
      'in.txt': 'one\n',
      'other.txt': 'x\n',
    });
    await build([ctx]);
    await fs.writeFile(path.join(ctx, 'other.txt'), 'y\n');
    expect(await ran((await build([ctx])).id)).toEqual([]);
    await fs.writeFile(path.join(ctx, 'in.txt'), 'two\n');
    const changed = await build(['-t', `mount-${m}:1`, ctx]);
    expect(await ran(changed.id)).toEqual([3, 4]);
    expect(changed.stdout).toMatch(/Step 2\/4 : RUN echo \w+ > \/m\n ---> Using cache\n/);
  });

  test('a hit after a worker restart: the cache lives in the store, not in the worker', async () => {
    const m = mark();
    const queue = `cache-restart-${m}`;
    const ctx = await makeContext({ Dockerfile: `FROM busybox\nRUN echo ${m} > /m\nRUN echo two\n` });
    const w1 = await startTestWorker([], { STRATA_TASK_QUEUE: queue });
    cleanups.push(w1.stop);
    const first = await build([ctx], { STRATA_TASK_QUEUE: queue });
    expect(await ran(first.id)).toEqual([2, 3]);
    await w1.stop();
    const w2 = await startTestWorker([], { STRATA_TASK_QUEUE: queue });
    cleanups.push(w2.stop);
    const second = await build([ctx], { STRATA_TASK_QUEUE: queue });
    expect((await activityAttempts(second.id)).map((a) => a.type)).toEqual(['planBuild', 'lookupCache', 'commitImage']);
    expect(second.image).toBe(first.image);
  });
});

// ---- the store's GC, each on a store of its own ----------------------------------------------

interface PrivateStore {
  home: string;
  env: NodeJS.ProcessEnv;
  worker: TestWorker;
}

/** A store with busybox in it and a worker of its own; `workerEnv` sees the store before the worker starts. */
async function privateStore(workerEnv: (home: string) => Promise<NodeJS.ProcessEnv> = async () => ({})): Promise<PrivateStore> {
  const home = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-gc-home-'));
  const env: NodeJS.ProcessEnv = { STRATA_HOME: home, STRATA_TASK_QUEUE: `gc-${mark()}` };
  await strataOk(['import', '--change', 'CMD ["sh"]', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox:latest'], { env });
  Object.assign(env, await workerEnv(home));
  const worker = await startTestWorker([], env);
  cleanups.push(async () => {
    await worker.stop();
    await fs.rm(home, { recursive: true, force: true });
  });
  return { home, env, worker };
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** chainIDs (hex) of an image's layers, from the store's own files: index.json, manifest, config. */
async function imageChain(home: string, tag: string): Promise<string[]> {
  const index = JSON.parse(await fs.readFile(path.join(home, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name']?.endsWith(tag));
  return entry ? chainOfManifest(home, entry.digest) : [];
}

async function chainOfManifest(home: string, manifest: string): Promise<string[]> {
  const blob = async (d: string) => JSON.parse(await fs.readFile(path.join(home, 'blobs', 'sha256', d.slice(7)), 'utf8')) as Record<string, unknown>;
  const config = (await blob(((await blob(manifest)) as { config: { digest: string } }).config.digest)) as { rootfs: { diff_ids: string[] } };
  const out: string[] = [];
  let parent: string | undefined;
  for (const diff of config.rootfs.diff_ids) {
    parent = parent ? `sha256:${(await import('node:crypto')).createHash('sha256').update(`${parent} ${diff}`).digest('hex')}` : diff;
    out.push(parent.slice(7));
  }
  return out;
}

/** Bytes of the regular files under `dir`. */
async function fileBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await fileBytes(p);
    else if (e.isFile()) total += (await fs.lstat(p)).size;
  }
  return total;
}

/** What the store takes (layers, blobs, contexts, logs) less what images hold, as a user would count it. */
async function storeBytesBesideImages(home: string): Promise<number> {
  let total = 0;
  for (const d of ['layers', 'blobs', 'contexts', 'logs']) total += await fileBytes(path.join(home, d));
  const index = JSON.parse(await fs.readFile(path.join(home, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const held = new Set<string>();
  const blobs = new Set<string>();
  for (const { digest } of index.manifests) {
    for (const c of await chainOfManifest(home, digest)) held.add(c);
    const manifest = JSON.parse(await fs.readFile(path.join(home, 'blobs', 'sha256', digest.slice(7)), 'utf8')) as { config: { digest: string }; layers: { digest: string }[] };
    for (const d of [digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) blobs.add(d.slice(7));
  }
  for (const c of held) total -= await fileBytes(path.join(home, 'layers', c));
  for (const b of blobs) total -= (await fs.stat(path.join(home, 'blobs', 'sha256', b)).catch(() => undefined))?.size ?? 0;
  return total;
}

describe('store GC', () => {
  test('builder prune -a frees what nothing uses and keeps what a tagged image uses', async () => {
    const s = await privateStore();
    const kept = await makeContext({ Dockerfile: 'FROM busybox\nRUN head -c 300000 /dev/urandom > /kept\n' });
    await build(['-t', 'kept:1', kept], s.env);
    // A stage no image keeps: its 2 MB layer is build cache only.
    const tmp = await makeContext({ Dockerfile: 'FROM busybox AS big\nRUN head -c 2000000 /dev/urandom > /big && echo x > /small\nFROM busybox\nCOPY --from=big /small /small\n' });
    await build(['-t', 'small:1', tmp], s.env);
    const bigLayers = (await fs.readdir(path.join(s.home, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n));
    const keptChain = await imageChain(s.home, 'kept:1');
    const smallChain = await imageChain(s.home, 'small:1');
    const cacheOnly = bigLayers.filter((c) => !keptChain.includes(c) && !smallChain.includes(c));
    expect(cacheOnly).toHaveLength(1);
    const before = await fileBytes(path.join(s.home, 'layers'));

    const df = await strataOk(['system', 'df'], { env: s.env });
    expect(df.stdout).toMatch(/^Build Cache\s+\d+\s+0\s+2\.\d+MB/m);

    const pruned = await strataOk(['builder', 'prune', '-a', '-f'], { env: s.env });
    expect(pruned.stdout).toContain('Deleted build cache objects:');
    expect(pruned.stdout).toContain(cacheOnly[0]!.slice(0, 25));
    expect(pruned.stdout).toMatch(/Total reclaimed space: 2(\.\d+)?MB/);
    expect(await exists(path.join(s.home, 'layers', cacheOnly[0]!))).toBe(false);
    for (const c of [...keptChain, ...smallChain]) expect(await exists(path.join(s.home, 'layers', c, 'diff'))).toBe(true);
    expect(await fileBytes(path.join(s.home, 'layers'))).toBeLessThan(before - 1_900_000);
    // The images are whole, and the cache is gone: a rebuild runs its steps again.
    await strataOk(['save', '-o', path.join(kept, 'out.tar'), 'kept:1', 'small:1'], { env: s.env });
    expect(await ran((await build(['-t', 'kept:1', kept], s.env)).id)).toEqual([2]);
    // A second prune has nothing to take.
    expect((await strataOk(['builder', 'prune', '-a', '-f'], { env: s.env })).stdout).not.toContain(cacheOnly[0]!.slice(0, 25));
  });

  test('builder prune -a removes RUN cache mounts, intermediate images and step image time records; a plain prune leaves them', async () => {
    const s = await privateStore();
    const ctx = await makeContext({
      Dockerfile: 'FROM busybox\nRUN --mount=type=cache,id=gc-mount,target=/c head -c 300000 /dev/urandom > /c/blob && echo x > /x\nRUN echo two > /two\n',
    });
    // No SOURCE_DATE_EPOCH: the step images' times are then recorded (cache/images/).
    await strataOk(['build', '-t', 'mounted:1', ctx], { env: s.env });
    const mounts = path.join(s.home, 'cache', 'mounts');
    const records = path.join(s.home, 'cache', 'images');
    const [mount, ...more] = await fs.readdir(mounts);
    expect(more).toEqual([]);
    expect(await fileBytes(path.join(mounts, mount!))).toBe(300000);
    expect((await fs.readdir(records)).length).toBeGreaterThan(0);
    const ids = async (all: boolean) => (await strataOk(['images', ...(all ? ['-a'] : []), '-q', '--no-trunc'], { env: s.env })).stdout.split('\n').filter(Boolean);
    const tagged = await ids(false);
    expect((await ids(true)).length).toBeGreaterThan(tagged.length);
    // The mount's 300 kB are build cache, all of it reclaimable.
    const df = await strataOk(['system', 'df'], { env: s.env });
    expect(df.stdout).toMatch(/^Build Cache\s+\d+\s+0\s+\d{3}(\.\d+)?kB\s+\d{3}(\.\d+)?kB/m);

    await strataOk(['builder', 'prune', '-f'], { env: s.env });
    expect(await fs.readdir(mounts)).toEqual([mount]);
    expect((await ids(true)).length).toBeGreaterThan(tagged.length);

    const pruned = await strataOk(['builder', 'prune', '-a', '-f'], { env: s.env });
    expect(pruned.stdout).toContain(`mount/${mount!.slice(0, 20)}`);
    expect(pruned.stdout).toMatch(/step image time records?\)/);
    expect(await fs.readdir(mounts)).toEqual([]);
    expect(await fs.readdir(records)).toEqual([]);
    expect(await ids(true)).toEqual(tagged);
    // The image is whole; a rebuild makes the mount again.
    await strataOk(['save', '-o', path.join(ctx, 'out.tar'), 'mounted:1'], { env: s.env });
    await strataOk(['build', '-t', 'mounted:1', ctx], { env: s.env });
    expect(await fs.readdir(mounts)).toEqual([mount]);
  });

  test('builder prune -a during a build keeps what the build holds: it succeeds and its layers are whole', async () => {
    const s = await privateStore();
    const m = mark();
    // Stage `one` is done (read once) before the last stage's RUN sleeps: then its layer is
    // mounted nowhere, made seconds before the running step began, and named only by a cache
    // entry (prune -a removes it) and the build's leases. The COPY after the sleep reads it again.
    const ctx = await makeContext({
      Dockerfile: `FROM busybox AS one\nRUN head -c 500000 /dev/urandom > /first\nFROM busybox\nCOPY --from=one /first /early\nRUN sleep 2\nRUN echo ${m} && sleep 10 && echo done > /second\nCOPY --from=one /first /first\n`,
    });
    const base = (await fs.readdir(path.join(s.home, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n));
    const cli = execa('node', [STRATA_BIN, 'build', '-t', 'held:1', ctx], { reject: false, env: { ...process.env, ...EPOCH, ...s.env } });
    await until('the sleeping RUN to start', () => findContainer(m));
    const first = (await fs.readdir(path.join(s.home, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n) && !base.includes(n));
    expect(first.length).toBeGreaterThanOrEqual(2);
    const pruned = await strataOk(['builder', 'prune', '-a', '-f'], { env: s.env });
    expect(pruned.stdout).toContain('Total reclaimed space');
    for (const c of first) expect(await exists(path.join(s.home, 'layers', c, 'diff'))).toBe(true);
    const r = await cli;
    expect(r.exitCode).toBe(0);
    const chain = await imageChain(s.home, 'held:1');
    for (const c of chain) expect(await exists(path.join(s.home, 'layers', c, 'diff'))).toBe(true);
    await strataOk(['save', '-o', path.join(ctx, 'out.tar'), 'held:1'], { env: s.env });
    expect((await execa('tar', ['-xOf', path.join(ctx, 'out.tar'), 'manifest.json'])).stdout).toContain('held:1');
  });

  test('builder prune --filter until=DUR keeps what was used since; --keep-storage SIZE trims only down to SIZE', async () => {
    const s = await privateStore();
    const ctx = await makeContext({ Dockerfile: 'FROM busybox AS big\nRUN head -c 2000000 /dev/urandom > /big && echo x > /small\nFROM busybox\nCOPY --from=big /small /small\n' });
    const before = new Set((await fs.readdir(path.join(s.home, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n)));
    await build(['-t', 'small:1', ctx], s.env);
    const chain = await imageChain(s.home, 'small:1');
    const cacheOnly = (await fs.readdir(path.join(s.home, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n) && !before.has(n) && !chain.includes(n));
    expect(cacheOnly).toHaveLength(1);
    const layer = path.join(s.home, 'layers', cacheOnly[0]!);
    await strataOk(['builder', 'prune', '-a', '-f', '--filter', 'until=1h'], { env: s.env });
    expect(await exists(layer)).toBe(true);
    await strataOk(['builder', 'prune', '-a', '-f', '--keep-storage', '100MB'], { env: s.env });
    expect(await exists(layer)).toBe(true);
    const trimmed = await strataOk(['builder', 'prune', '-a', '-f', '--keep-storage', '0'], { env: s.env });
    expect(trimmed.stdout).toContain(cacheOnly[0]!.slice(0, 25));
    expect(await exists(layer)).toBe(false);
    for (const c of chain) expect(await exists(path.join(s.home, 'layers', c, 'diff'))).toBe(true);
    const bad = await strata(['builder', 'prune', '-f', '--filter', 'label=x'], { env: s.env });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toContain('only until=DURATION');
  });

  test('rmi takes a built image and its layers whatever cache entries name them; the rebuild then runs its steps and is whole', async () => {
    const s = await privateStore();
    const ctx = await makeContext({ Dockerfile: 'FROM busybox\nRUN head -c 300000 /dev/urandom > /r\nCOPY Dockerfile /d\n' });
    await build(['-t', 'gone:1', ctx], s.env);
    const base = await imageChain(s.home, 'busybox:latest');
    const own = (await imageChain(s.home, 'gone:1')).filter((c) => !base.includes(c));
    expect(own).toHaveLength(2);
    const rmi = await strataOk(['rmi', 'gone:1'], { env: s.env });
    for (const c of own) {
      expect(rmi.stdout).toContain(`Deleted: sha256:${c}`);
      expect(await exists(path.join(s.home, 'layers', c))).toBe(false);
    }
    for (const c of base) expect(await exists(path.join(s.home, 'layers', c, 'diff'))).toBe(true);
    const again = await build(['-t', 'gone:1', ctx], s.env);
    expect(again.stdout).not.toContain('Using cache');
    await strataOk(['save', '-o', path.join(ctx, 'out.tar'), 'gone:1'], { env: s.env });
  });

  test('STRATA_CACHE_MAX: after each build the store stays within the budget (the images in it never go)', async () => {
    // The budget: the base image, and room for one of the 1.5 MB layers no image keeps.
    const room = 2_500_000;
    const s = await privateStore(async (home) => ({ STRATA_CACHE_MAX: String((await fileBytes(path.join(home, 'layers'))) + (await fileBytes(path.join(home, 'blobs'))) + room) }));
    const firstBig: string[] = [];
    for (let i = 0; i < 4; i++) {
      const ctx = await makeContext({
        Dockerfile: `FROM busybox AS big\nRUN head -c 1500000 /dev/urandom > /big-${i} && echo ${i} > /small\nFROM busybox\nCOPY --from=big /small /small\n`,
      });
      await build(['-t', `budget:${i}`, ctx], s.env);
      if (i === 0) firstBig.push(...(await fs.readdir(path.join(s.home, 'layers'))).filter((n) => /^[0-9a-f]{64}$/.test(n)));
      expect(await storeBytesBesideImages(s.home)).toBeLessThanOrEqual(room);
    }
    // The oldest stage's layer went (least recently used), the images' layers stayed.
    const held = new Set((await Promise.all([0, 1, 2, 3].map((i) => imageChain(s.home, `budget:${i}`)))).flat());
    const gone = firstBig.filter((c) => !held.has(c));
    expect(gone.length).toBeGreaterThan(0);
    for (const c of gone) expect(await exists(path.join(s.home, 'layers', c))).toBe(false);
    for (const c of held) expect(await exists(path.join(s.home, 'layers', c, 'diff'))).toBe(true);
  });
});
