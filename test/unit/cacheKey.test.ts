// The instruction cache's key (engine/cache/key.ts) and the context checksum it takes for COPY
// (engine/cache/checksum.ts), as tables: what changes a step's key and what does not.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { contextChecksum, type SourcesSpec } from '../../engine/cache/checksum.js';
import { baseKey, keyChain, resultKey } from '../../engine/cache/key.js';
import { sha256, type Digest } from '../../engine/digest.js';
import { parseDockerfile } from '../../engine/dockerfile/parse.js';
import type { ImageConfigFile } from '../../engine/image/types.js';
import { planDockerfile } from '../../engine/plan/planner.js';
import type { BaseSpec, BuildPlan, Step } from '../../engine/plan/types.js';

const PLATFORM = { os: 'linux', architecture: 'amd64' };

async function plan(dockerfile: string, buildArgs: Record<string, string> = {}): Promise<BuildPlan> {
  return planDockerfile(parseDockerfile(dockerfile), {
    buildArgs,
    platform: PLATFORM,
    resolveImage: async (ref) => {
      const config: ImageConfigFile = { architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin'] }, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
      return { ref, manifestDigest: sha256(`manifest ${ref}`), configDigest: sha256(`config ${ref}`), config };
    },
  });
}

interface KeyInputs {
  /** The COPY sources' checksum every COPY from the context gets. */
  sources?: Digest;
  sourceDateEpoch?: number;
  /** Top layer of each stage a step reads. */
  stageTops?: Map<number, Digest | undefined>;
  network?: string;
  /** Checksums of the bind mounts' context sources, for RUN steps that have mounts. */
  mounts?: Record<string, Digest>;
}

/** The keys of the last stage's steps, as lookup.ts chains them (inputs given, not read from files). */
async function keys(dockerfile: string, buildArgs: Record<string, string> = {}, inputs: KeyInputs = {}): Promise<Digest[]> {
  const p = await plan(dockerfile, buildArgs);
  const stage = p.stages[p.stages.length - 1]!;
  const root = baseKey(stage.base as BaseSpec & { kind: 'image' | 'scratch' }, PLATFORM, inputs.sourceDateEpoch);
  const inputsOf = (step: Step) => {
    if (step.kind === 'copy' && !step.from) return { sources: inputs.sources ?? sha256('sources') };
    if (step.kind === 'run') return { network: step.network ?? inputs.network ?? 'default', mounts: step.mounts?.length ? (inputs.mounts ?? {}) : {} };
    return {};
  };
  return keyChain(root, stage.steps, inputsOf, inputs.stageTops ?? new Map());
}

/** Index of the first key that differs; -1 when all are equal. */
function firstDifference(a: Digest[], b: Digest[]): number {
  expect(a).toHaveLength(b.length);
  return a.findIndex((k, i) => k !== b[i]);
}

// Steps: 0 FROM, 1…: the instructions in order.
const BASE = 'FROM busybox\nARG V=1\nRUN echo one\nCOPY a.txt /a\nENV E=1\nRUN cat /a\nCMD ["sh"]\n';

const MOUNTS = 'FROM busybox\nRUN echo one\nRUN --mount=type=bind,source=a.txt,target=/a cat /a\nRUN echo two\n';

describe('what changes a step key', () => {
  test.each([
    ['the same Dockerfile and inputs', BASE, {}, {}, BASE, {}, {}, -1],
    ['a comment and blank lines (a step keeps its meaning, not its line)', BASE, {}, {}, BASE.replace('RUN echo one\n', '# note\n\nRUN echo one\n'), {}, {}, -1],
    ['a build arg no instruction declares', BASE, {}, {}, BASE, { UNUSED: 'x' }, {}, -1],
    ['a build arg a RUN uses (ARG V): from the ARG on', BASE, {}, {}, BASE, { V: '2' }, {}, 1],
    ['ENV before a RUN: from the ENV on, the RUN after it too', BASE, {}, {}, BASE.replace('ENV E=1', 'ENV E=2'), {}, {}, 4],
    ['the COPY sources checksum: from the COPY on', BASE, {}, {}, BASE, {}, { sources: sha256('other') }, 3],
    ['the base image pinned to another digest: every step', BASE, {}, {}, BASE.replace('FROM busybox', 'FROM busybox:2'), {}, {}, 0],
    ['SOURCE_DATE_EPOCH: every step', BASE, {}, {}, BASE, {}, { sourceDateEpoch: 1 }, 0],
    ['the RUN text after expansion', BASE, {}, {}, BASE.replace('RUN echo one', 'RUN echo  one'), {}, {}, 2],
    ['the last config step only', BASE, {}, {}, BASE.replace('CMD ["sh"]', 'CMD ["ls"]'), {}, {}, 6],
    ['the build network for RUN', BASE, {}, {}, BASE, {}, { network: 'none' }, 2],
    ["a RUN's bind-mounted context file: from that RUN on", MOUNTS, {}, { mounts: { 0: sha256('one') } }, MOUNTS, {}, { mounts: { 0: sha256('two') } }, 2],
    ['the target of a bind mount: from that RUN on', MOUNTS, {}, {}, MOUNTS.replace('target=/a', 'target=/b'), {}, {}, 2],
  ])('%s', async (_name, df1, args1, in1, df2, args2, in2, expected) => {
    expect(firstDifference(await keys(df1, args1, in1), await keys(df2, args2, in2))).toBe(expected);
  });

  test('COPY --from a stage: keyed by the stage result (its top layer), not by its index or name', async () => {
    const df = (name: string) => `FROM busybox AS ${name}\nRUN echo x\nFROM busybox\nCOPY --from=${name} /x /x\nRUN true\n`;
    const tops = (top: string) => ({ stageTops: new Map([[0, sha256(top)]]) });
    expect(firstDifference(await keys(df('a'), {}, tops('t1')), await keys(df('b'), {}, tops('t1')))).toBe(-1);
    expect(firstDifference(await keys(df('a'), {}, tops('t1')), await keys(df('a'), {}, tops('t2')))).toBe(1);
  });

  test('a step keyed on its result: the diffID decides', () => {
    const parent = sha256('parent');
    const step = { kind: 'workdir', number: 1, line: 1, text: 'x', path: '/x', patch: {}, history: {} } as Step;
    const tops = new Map();
    expect(resultKey(parent, step, sha256('a'), tops)).toBe(resultKey(parent, step, sha256('a'), tops));
    expect(resultKey(parent, step, sha256('a'), tops)).not.toBe(resultKey(parent, step, sha256('b'), tops));
    expect(resultKey(parent, step, undefined, tops)).not.toBe(resultKey(parent, step, sha256('a'), tops));
  });

  test('a step whose key cannot be known stops the chain', async () => {
    const p = await plan(BASE);
    const steps = p.stages[0]!.steps;
    const chain = keyChain(sha256('root'), steps, (s) => (s.kind === 'copy' ? 'unknown' : {}), new Map());
    expect(chain).toHaveLength(3); // FROM, ARG, RUN: the COPY and what follows are keyed after it runs
  });
});

// ---- the context checksum -------------------------------------------------------------------

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/** A context: `name` → content; `name/` a directory; `name -> target` a symlink. */
async function context(entries: string[]): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-checksum-'));
  dirs.push(dir);
  for (const e of entries) {
    const link = / -> /.exec(e);
    const p = path.join(dir, link ? e.slice(0, link.index) : e);
    await fs.mkdir(path.dirname(p), { recursive: true });
    if (link) await fs.symlink(e.slice(link.index + 4), p);
    else if (e.endsWith('/')) await fs.mkdir(p, { recursive: true });
    else await fs.writeFile(p, `content of ${e}\n`, { mode: 0o644 });
  }
  return dir;
}

const TREE = ['app/main.sh', 'app/lib/util.sh', 'app/lib/data.txt', 'README', 'other.txt', 'link -> app/main.sh'];

describe('the context checksum of COPY sources', () => {
  const copy = (sources: string[], excludes?: string[]): SourcesSpec => ({ sources, excludes, instruction: 'COPY' });
  test.each<[string, SourcesSpec, (dir: string) => Promise<unknown>, boolean]>([
    ['an mtime', copy(['app']), (d) => fs.utimes(path.join(d, 'app/main.sh'), 1, 1), false],
    ['a directory mtime', copy(['app']), (d) => fs.utimes(path.join(d, 'app/lib'), 1, 1), false],
    ['a mode', copy(['app']), (d) => fs.chmod(path.join(d, 'app/main.sh'), 0o755), true],
    ['a directory mode', copy(['app']), (d) => fs.chmod(path.join(d, 'app/lib'), 0o700), true],
    ['the content', copy(['app']), (d) => fs.writeFile(path.join(d, 'app/lib/util.sh'), 'changed\n'), true],
    ['a content of the same size', copy(['app']), (d) => fs.writeFile(path.join(d, 'app/main.sh'), 'content of app/main.sX\n'), true],
    ['a new file in a copied directory', copy(['app']), (d) => fs.writeFile(path.join(d, 'app/new'), 'x'), true],
    ['a renamed file', copy(['app']), (d) => fs.rename(path.join(d, 'app/lib/data.txt'), path.join(d, 'app/lib/data2.txt')), true],
    ['a file outside the sources', copy(['app']), (d) => fs.writeFile(path.join(d, 'other.txt'), 'changed\n'), false],
    ['an excluded file (--exclude)', copy(['app'], ['*.txt', 'lib/*.txt']), (d) => fs.writeFile(path.join(d, 'app/lib/data.txt'), 'changed\n'), false],
    ['a file a wildcard matches', copy(['*.txt']), (d) => fs.writeFile(path.join(d, 'other.txt'), 'changed\n'), true],
    ['a new file a wildcard matches', copy(['*.txt']), (d) => fs.writeFile(path.join(d, 'new.txt'), 'x'), true],
    ['the target of a symlink source (followed, as COPY does)', copy(['link']), (d) => fs.writeFile(path.join(d, 'app/main.sh'), 'changed\n'), true],
    [
      'a symlink target inside a copied directory',
      copy(['app']),
      async (d) => {
        await fs.symlink('main.sh', path.join(d, 'app/l'));
        return undefined;
      },
      true,
    ],
  ])('%s', async (_name, spec, change, changes) => {
    const dir = await context(TREE);
    const before = await contextChecksum(dir, spec);
    await change(dir);
    expect((await contextChecksum(dir, spec)) !== before).toBe(changes);
  });

  test('a missing source and the same source present give different sums', async () => {
    const dir = await context(['a.txt']);
    const missing = await contextChecksum(dir, copy(['b.txt']));
    await fs.writeFile(path.join(dir, 'b.txt'), '');
    expect(await contextChecksum(dir, copy(['b.txt']))).not.toBe(missing);
  });

  test('ADD skips URL sources (keyed by URL and --checksum) but hashes local ones', async () => {
    const dir = await context(['a.txt']);
    const spec: SourcesSpec = { sources: ['https://example.com/x.tgz', 'a.txt'], instruction: 'ADD' };
    const before = await contextChecksum(dir, spec);
    await fs.writeFile(path.join(dir, 'a.txt'), 'changed');
    expect(await contextChecksum(dir, spec)).not.toBe(before);
  });

  test('the same files in another directory give the same sum', async () => {
    const a = await context(TREE);
    const b = await context(TREE);
    expect(await contextChecksum(a, copy(['app', 'README']))).toBe(await contextChecksum(b, copy(['app', 'README'])));
  });
});
