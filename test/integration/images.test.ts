// Image management against dockerd as the peer: what the seeds walk through (two tags on one
// image, rmi of one tag, of the last tag, a rebuilt tag leaving a dangling image that prune
// removes, history) printed by strata and by docker on the same steps and compared; images
// moving both ways with save/load; shared layers stored once; --exclude-base deltas; export
// and import keeping every file; skopeo reading the OCI layout inside strata's archives.
import { createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { strata, strataOk, type RunResult } from '../helpers/cli.js';
import { classicBuildRaw, filesystemListing, removeClassicLeftovers, tarListing } from '../helpers/differential.js';
import { docker, dockerLoad, dockerRmi, dockerRun, uniqueName } from '../helpers/docker.js';
import { startRegistry } from '../helpers/registry.js';

const RUN = uniqueName('imgs');
const BASE = `${RUN}-base:latest`;
const LABEL = `strata.test.run=${RUN}`;
const BUSYBOX_TAR = process.env.STRATA_TEST_BUSYBOX_TAR!;
const dockerImages: string[] = [];
const strataImages: string[] = [];
const dirs: string[] = [];

async function scratch(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `strata-images-${prefix}-`));
  dirs.push(dir);
  return dir;
}

async function context(files: Record<string, string>): Promise<string> {
  const dir = await scratch('ctx');
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), content);
  return dir;
}

/** One base under one name in both: the test busybox rootfs imported from stdin, labelled with this run. */
beforeAll(async () => {
  const changes = ['--change', 'CMD ["sh"]', '--change', `LABEL ${LABEL}`];
  await execa('docker', ['import', ...changes, '-', BASE], { inputFile: BUSYBOX_TAR });
  dockerImages.push(BASE);
  await strataOk(['import', ...changes, '-', BASE], { inputFile: BUSYBOX_TAR });
  strataImages.push(BASE);
});

afterAll(async () => {
  await dockerRmi(...dockerImages.reverse());
  await removeClassicLeftovers();
  for (const img of strataImages.reverse()) await strata(['rmi', '-f', img]);
  await strata(['image', 'prune', '-f', '--filter', `label=${LABEL}`]);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function strataBuild(ctx: string, tags: string[]): Promise<void> {
  await strataOk(['build', ...tags.flatMap((t) => ['-t', t]), ctx]);
  strataImages.push(...tags);
}

async function dockerBuild(ctx: string, tags: string[]): Promise<void> {
  const r = await classicBuildRaw(
    ctx,
    tags.flatMap((t) => ['-t', t]),
  );
  if (r.exitCode !== 0) throw new Error(`docker build failed:\n${r.output}`);
  dockerImages.push(...tags);
}

// ---- the seeds' walk-through, printed by both ----------------------------------------------

interface Tool {
  name: 'docker' | 'strata';
  run(args: string[]): Promise<RunResult>;
  build(ctx: string, tags: string[]): Promise<void>;
}

const tools: Tool[] = [
  {
    name: 'docker',
    run: async (args) => {
      const r = await execa('docker', args, { reject: false });
      return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
    build: dockerBuild,
  },
  { name: 'strata', run: (args) => strata(args), build: strataBuild },
];

/**
 * A command's output as comparable cells: columns split where docker's tabwriter put three
 * or more blanks; IDs (image and layer) as #1, #2… in order of first appearance over the
 * whole walk; ages and dates as placeholders; an error's prefix (docker's "Error response
 * from daemon:", strata's "Error:") dropped; CREATED BY of a COPY reduced to the instruction
 * (the classic builder's text differs, a deliberate difference in docs/compatibility.md).
 */
function normalizer(): (text: string) => string[][] {
  const ids = new Map<string, string>();
  const id = (hex: string) => {
    const key = hex.slice(0, 12);
    if (!ids.has(key)) ids.set(key, `#${ids.size + 1}`);
    return ids.get(key)!;
  };
  return (text) =>
    text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((line) =>
        line
          .replace(/^(Error response from daemon|Error): /, '')
          .trimEnd()
          .split(/ {3,}/)
          .map((cell) =>
            cell
              .replace(/(sha256:)?\b([0-9a-f]{64}|[0-9a-f]{12})\b/g, (_, pre: string | undefined, hex: string) => `${pre ?? ''}${id(hex)}`)
              .replace(/^(Less than a second|\d+ seconds?|About a minute|\d+ minutes|About an hour|\d+ hours) ago$/, '<ago>')
              .replace(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, '<time>')
              .replace(/^(\/bin\/sh -c #\(nop\) )?COPY .*$/, 'COPY f /f'),
          ),
      );
}

/** True when every cell of every row starts where a header cell does: columns as tabwriter aligns them. */
function aligned(text: string): boolean {
  const lines = text.split('\n').filter((l) => l !== '');
  const starts = (l: string) => [...l.matchAll(/(?:^| {3,})(\S)/g)].map((m) => m.index! + m[0].length - 1);
  const header = new Set(starts(lines[0]!));
  return lines.every((l) => starts(l).every((x) => header.has(x)));
}

test("images, rmi, image prune and history print what docker prints on the seeds' steps", async () => {
  const app = `${RUN}-app`;
  // strata marks the history rows it writes with the comment "strata" (BuildKit writes
  // "buildkit.dockerfile.v0"); the classic builder leaves them empty: docs/compatibility.md.
  const unmark = (text: string) => text.replace(/ {3,}strata$/gm, '').replace(/\|strata$/gm, '|');
  const transcripts: Record<string, { step: string; exitCode: number; stdout: string[][]; stderr: string[][]; raw: string }[]> = {};
  for (const tool of tools) {
    const norm = normalizer();
    const steps: (typeof transcripts)[string] = (transcripts[tool.name] = []);
    const step = async (name: string, args: string[]) => {
      const r = await tool.run(args);
      if (tool.name === 'strata' && args[0] === 'history') r.stdout = unmark(r.stdout);
      steps.push({ step: name, exitCode: r.exitCode, stdout: norm(r.stdout), stderr: norm(r.stderr), raw: r.stdout });
      return r;
    };
    const ctx = await context({ Dockerfile: `FROM ${BASE}\nCOPY f /f\n`, f: 'one\n' });
    await tool.build(ctx, [`${app}:1`, `${app}:2`]);
    await step('two tags on one image', ['images', app]);
    const id = (await tool.run(['images', '-q', `${app}:1`])).stdout.trim();
    await step('rmi by ID of an image with two tags', ['rmi', id]);
    await step('rmi of one tag only untags', ['rmi', `${app}:1`]);
    await step('one tag left', ['images', app]);
    await step('rmi of the last tag deletes the image and its layer', ['rmi', `${app}:2`]);
    await step('nothing left', ['images', app]);
    await tool.build(ctx, [`${app}:1`]);
    // docker lists images by creation time in seconds, in no set order within one second.
    await new Promise((r) => setTimeout(r, 1100));
    await fs.writeFile(path.join(ctx, 'f'), 'two!!\n');
    await tool.build(ctx, [`${app}:1`]);
    await step('a rebuilt tag leaves a dangling image', ['images', '--filter', `label=${LABEL}`]);
    await step('dangling=true', ['images', '--filter', 'dangling=true', '--filter', `label=${LABEL}`]);
    await step('prune removes it', ['image', 'prune', '-f', '--filter', `label=${LABEL}`]);
    await step('after prune', ['images', '--filter', `label=${LABEL}`]);
    await step('history', ['history', `${app}:1`]);
    await step('history -H=false', ['history', '-H=false', `${app}:1`]);
    await step('history --format', ['history', '--format', '{{.ID}}|{{.Size}}|{{.Comment}}', `${app}:1`]);
    await step('images --format json', ['images', '--format', '{{.Repository}} {{.Tag}} {{.ID}} {{.Size}} {{.Digest}}', app]);
    await step('rmi of the image and of a missing one', ['rmi', `${app}:1`, `${app}:nosuch`]);
  }
  const comparable = (t: (typeof transcripts)[string]) => t.map(({ raw: _raw, ...rest }) => rest);
  expect(comparable(transcripts.strata!)).toEqual(comparable(transcripts.docker!));
  for (const s of transcripts.strata!) if (s.raw.startsWith('REPOSITORY') || s.raw.startsWith('IMAGE')) expect({ [s.step]: aligned(s.raw) }).toEqual({ [s.step]: true });
  // The walk-through really went through the rules (a transcript of errors would compare too).
  const strataSteps = Object.fromEntries(transcripts.strata!.map((s) => [s.step, s]));
  expect(strataSteps['rmi by ID of an image with two tags']!.stderr[0]![0]).toMatch(/^conflict: unable to delete #1 \(must be forced\)/);
  expect(strataSteps['rmi of the last tag deletes the image and its layer']!.stdout).toEqual([[`Untagged: ${app}:2`], ['Deleted: sha256:#1'], ['Deleted: sha256:#2']]);
  const pruned = strataSteps['prune removes it']!.stdout.flat();
  expect(pruned).toEqual(['Deleted Images:', expect.stringMatching(/^deleted: sha256:#\d+$/), expect.stringMatching(/^deleted: sha256:#\d+$/), 'Total reclaimed space: 4B']);
  const dangling = strataSteps['dangling=true']!.stdout[1]![2];
  expect(pruned[1]).toBe(`deleted: sha256:${dangling}`);
  const [top, base] = strataSteps['history']!.stdout.slice(1);
  expect(top!.at(-1)).toBe('6B');
  expect(base!.at(-1)).toBe('Imported from -');
  expect(base![0]).not.toBe('<missing>'); // the base's own ID: it is in the store
});

// ---- moving images between machines ----------------------------------------------------------

test('an image docker built loads into strata (plain, gzip, zstd), strata builds FROM it, and the result runs in docker', async () => {
  const made = `${RUN}-dock:1`;
  await dockerBuild(await context({ Dockerfile: `FROM ${BASE}\nRUN echo docker-made > /made-by\nENV MADE=docker\n` }), [made]);
  const dir = await scratch('dock');
  const tar = path.join(dir, 'docker-saved.tar');
  await docker(['save', '-o', tar, made]);
  await execa('sh', ['-c', 'gzip -c "$1" > "$1.gz" && zstd -q -c "$1" > "$1.zst"', 'sh', tar]);

  for (const file of [tar, `${tar}.gz`, `${tar}.zst`]) {
    const r = await strataOk(['load', '-i', file]);
    expect(r.stdout).toBe(`Loaded image: ${made}`);
  }
  strataImages.push(made);

  // inspect agrees with docker's on the same image (strata does not record parents).
  const ours = JSON.parse((await strataOk(['inspect', made])).stdout)[0];
  const theirs = JSON.parse(await docker(['image', 'inspect', made]))[0];
  for (const key of ['Id', 'RepoTags', 'Comment', 'Created', 'Author', 'Config', 'Architecture', 'Os', 'Size', 'RootFS']) {
    expect({ [key]: ours[key] }).toEqual({ [key]: theirs[key] });
  }

  const on = `${RUN}-on-dock:1`;
  await strataBuild(await context({ Dockerfile: `FROM ${made}\nRUN cat /made-by > /seen && echo "$MADE" >> /seen\n` }), [on]);
  const out = path.join(dir, 'strata-saved.tar');
  await strataOk(['save', '-o', out, on]);
  expect(await dockerLoad(out)).toEqual([on]);
  dockerImages.push(on);
  expect(await dockerRun(on, ['cat', '/seen'])).toBe('docker-made\ndocker');
});

test('images built on one base and saved together are smaller than saved apart by about the base; a delta saved with --exclude-base loads into a dockerd that has the base', async () => {
  const [a, b] = [`${RUN}-a:1`, `${RUN}-b:1`];
  await strataBuild(await context({ Dockerfile: `FROM ${BASE}\nRUN echo a > /which\n` }), [a]);
  await strataBuild(await context({ Dockerfile: `FROM ${BASE}\nRUN echo b > /which\n` }), [b]);
  const dir = await scratch('save');
  const size = async (args: string[]) => {
    const file = path.join(dir, `${args.join('_').replace(/[^\w]/g, '_')}.tar`);
    await strataOk(['save', '-o', file, ...args]);
    return { file, bytes: (await fs.stat(file)).size };
  };
  const [onlyA, onlyB, both] = [await size([a]), await size([b]), await size([a, b])];
  const baseLayer = (await fs.stat(BUSYBOX_TAR)).size;
  const saved = onlyA.bytes + onlyB.bytes - both.bytes;
  expect(Math.abs(saved - baseLayer)).toBeLessThan(baseLayer * 0.05);
  expect(await dockerLoad(both.file)).toEqual([a, b]);
  dockerImages.push(a, b);
  expect(await dockerRun(b, ['cat', '/which'])).toBe('b');

  // A delta: the base's layers are listed but not stored; docker has the base (same bytes, same chain).
  const c = `${RUN}-c:1`;
  await strataBuild(await context({ Dockerfile: `FROM ${BASE}\nRUN echo c > /which\n` }), [c]);
  const delta = path.join(dir, 'delta.tar');
  await strataOk(['save', '--exclude-base', BASE, '-o', delta, c]);
  expect((await fs.stat(delta)).size).toBeLessThan(baseLayer / 4);
  expect(await dockerLoad(delta)).toEqual([c]);
  dockerImages.push(c);
  expect(await dockerRun(c, ['cat', '/which'])).toBe('c');
  // strata loads it too where the base is, and says what is missing where it is not.
  expect((await strataOk(['load', '-i', delta])).stdout).toBe(`Loaded image: ${c}`);
  const empty = await scratch('empty-store');
  const elsewhere = await strata(['load', '-i', delta], { env: { STRATA_HOME: empty } });
  expect(elsewhere.exitCode).toBe(1);
  expect(elsewhere.stderr).toMatch(/layer 1 \(sha256:[0-9a-f]{64}\) is neither in the archive .* nor in the store/);
});

test('save to stdout pipes into docker load, and refuses a terminal', async () => {
  const img = `${RUN}-pipe:1`;
  await strataBuild(await context({ Dockerfile: `FROM ${BASE}\nRUN echo piped > /p\n` }), [img]);
  const r = await execa('sh', ['-c', `node "$1" save "$2" | docker load`, 'sh', path.resolve('bin', 'strata.js'), img], { reject: false, env: process.env });
  expect(String(r.stdout)).toBe(`Loaded image: ${img}`);
  dockerImages.push(img);
  expect(await dockerRun(img, ['cat', '/p'])).toBe('piped');
  const tty = await execa('script', ['-qec', `node ${path.resolve('bin', 'strata.js')} save ${img}`, '/dev/null'], { reject: false, env: process.env });
  expect(tty.exitCode).toBe(1);
  expect(String(tty.stdout)).toContain('cowardly refusing to save to a terminal. Use the -o flag or redirect');
});

test('skopeo reads the OCI layout inside a strata archive; a skopeo oci-archive loads into strata', async () => {
  const img = `${RUN}-oci:1`;
  await strataBuild(await context({ Dockerfile: `FROM ${BASE}\nRUN echo oci > /o\n` }), [img]);
  const dir = await scratch('oci');
  const file = path.join(dir, 'img.tar');
  await strataOk(['save', '-o', file, img]);
  const inspected = JSON.parse((await execa('skopeo', ['inspect', `oci-archive:${file}`])).stdout) as { Layers: string[] };
  const ours = JSON.parse((await strataOk(['inspect', img])).stdout)[0];
  expect(inspected.Layers).toEqual(ours.RootFS.Layers);

  // And back: skopeo writes an OCI archive of it (gzip layers), strata loads the same image.
  const converted = path.join(dir, 'skopeo-oci.tar');
  const renamed = `${RUN}-via-skopeo:2`;
  await execa('skopeo', ['copy', '--dest-compress', `oci-archive:${file}`, `oci-archive:${converted}:${renamed}`]);
  expect((await strataOk(['load', '-i', converted])).stdout).toBe(`Loaded image: ${renamed}`);
  strataImages.push(renamed);
  const back = JSON.parse((await strataOk(['inspect', renamed])).stdout)[0];
  expect(back.Id).toBe(ours.Id);
});

test('import refuses a docker save archive and points at load', async () => {
  const dir = await scratch('import');
  const file = path.join(dir, 'saved.tar');
  await docker(['save', '-o', file, BASE]);
  const r = await strata(['import', file, `${RUN}-wrong:1`]);
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toContain('image archive');
  expect(r.stderr).toContain('strata load -i FILE');
  expect((await strata(['images', '-q', `${RUN}-wrong`])).stdout).toBe('');
  // A truncated archive loads nothing.
  const cut = path.join(dir, 'cut.tar');
  await execa('sh', ['-c', 'head -c 1000000 "$1" > "$2"', 'sh', file, cut]);
  const t = await strata(['load', '-i', cut]);
  expect(t.exitCode).toBe(1);
  expect(t.stderr).toContain('damaged or truncated');
});

test('a pushed image lists its repository digest (images --digests, inspect RepoDigests), and rmi of the last tag takes it along', async () => {
  const registry = await startRegistry();
  try {
    const img = `${registry.address}/${RUN}-pushed:1`;
    await strataBuild(await context({ Dockerfile: `FROM ${BASE}\nRUN echo pushed > /p\n` }), [img]);
    const pushed = await strataOk(['push', img]);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(pushed.stdout)![1]!;
    const rows = (await strataOk(['images', '--digests', `${registry.address}/${RUN}-pushed`])).stdout.split('\n');
    expect(rows[1]!.split(/ {3,}/).slice(0, 3)).toEqual([`${registry.address}/${RUN}-pushed`, '1', digest]);
    expect(JSON.parse((await strataOk(['inspect', img])).stdout)[0].RepoDigests).toEqual([`${registry.address}/${RUN}-pushed@${digest}`]);
    expect((await strataOk(['images', '--format', '{{.Tag}} {{.Digest}}', `${registry.address}/${RUN}-pushed`])).stdout).toBe(`1 ${digest}`);
    // docker's rule: removing a repository's last tag removes its digest references too.
    const gone = (await strataOk(['rmi', img])).stdout.split('\n');
    expect(gone.slice(0, 2)).toEqual([`Untagged: ${img}`, `Untagged: ${registry.address}/${RUN}-pushed@${digest}`]);
    expect(gone[2]).toMatch(/^Deleted: sha256:/);
  } finally {
    await registry.stop();
  }
});

// ---- export ---------------------------------------------------------------------------------

test('export flattens the layers (whiteouts applied, hardlinks kept) as docker export does; importing it back keeps every file, mode and link', async () => {
  const img = `${RUN}-exp:1`;
  await strataBuild(
    await context({
      Dockerfile: [
        `FROM ${BASE}`,
        'RUN mkdir -p /data/empty /data/private && echo x > /data/f && ln /data/f /data/hard && ln -s f /data/sym && chmod 4755 /data/f && chmod 700 /data/private && mkfifo /data/fifo',
        'RUN rm /bin/vi /data/sym && ln -s hard /data/sym2 && echo more > /data/private/secret',
        '',
      ].join('\n'),
    }),
    [img],
  );
  const dir = await scratch('export');
  const first = path.join(dir, 'first.tar');
  await strataOk(['export', '-o', first, img]);
  const listing = await tarListing(createReadStream(first));
  expect(listing).toContain('/data/hard link 4755 0:0 -> data/f');
  expect(listing.some((r) => r.startsWith('/bin/vi '))).toBe(false);
  expect(listing.some((r) => r.startsWith('/data/sym '))).toBe(false);

  // docker export of a container of the same image (loaded from strata's save), without the
  // entries docker's container init layer adds.
  const saved = path.join(dir, 'saved.tar');
  await strataOk(['save', '-o', saved, img]);
  await dockerLoad(saved);
  dockerImages.push(img);
  const init = new Set(['/.dockerenv', '/etc/hostname', '/etc/hosts', '/etc/resolv.conf', '/etc/mtab', '/dev/console', '/dev/pts', '/dev/shm']);
  const dockers = (await filesystemListing(img)).filter((r) => !init.has(r.split(' ')[0]!));
  const normalizeLink = (rows: string[]) => rows.map((r) => r.replace(/ -> data\/f$/, ' -> /data/f'));
  expect(normalizeLink(listing)).toEqual(normalizeLink(dockers));

  // Import back, export again: the same listing.
  const back = `${RUN}-exp-back:1`;
  await strataOk(['import', first, back]);
  strataImages.push(back);
  const second = path.join(dir, 'second.tar');
  await strataOk(['export', back, '-o', second]);
  expect(await tarListing(createReadStream(second))).toEqual(listing);
});

test("system df prints docker's rows", async () => {
  const r = await strataOk(['system', 'df']);
  const lines = r.stdout.trimEnd().split('\n');
  const theirs = (await docker(['system', 'df'])).split('\n');
  expect(lines[0]).toBe(theirs[0]);
  expect(lines.map((l) => l.split(/ {3,}/)[0])).toEqual(['TYPE', 'Images', 'Containers', 'Local Volumes', 'Build Cache']);
  expect(lines[2]).toMatch(/^Containers {6}0 {9}0 {9}0B {8}0B$/);
  const verbose = await strataOk(['system', 'df', '-v']);
  expect(verbose.stdout).toContain('Images space usage:\n\nREPOSITORY');
  expect(verbose.stdout).toContain(`${RUN}-base`);
  expect(verbose.stdout).toMatch(/\nBuild cache usage: \S+\n\nCACHE ID {3,}CACHE TYPE {3,}SIZE/);
});
