// What `strata build` prints, checked as a docker user would use it: the ` ---> ID` after
// each step (also steps that add no layer) names an image `strata save` and `COPY --from`
// take; each step's time; -q prints the image ID alone; --iidfile; `builds ls` shows this
// store's builds only, unless --all; a usage error prints one line and a hint.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { strata, strataOk } from '../helpers/cli.js';

const dirs: string[] = [];
/** Run before the dirs go: a second store's build starts that store's background worker. */
const stops: (() => Promise<unknown>)[] = [];

async function scratchDir(prefix: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `strata-output-${prefix}-`));
  dirs.push(dir);
  return dir;
}

async function context(files: Record<string, string>): Promise<string> {
  const dir = await scratchDir('ctx');
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), content);
  return dir;
}

afterAll(async () => {
  for (const stop of stops) await stop();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

/** The ` ---> ID (TIME)` lines of a plain build's output, one per step, in order. */
function stepIds(stdout: string): { id: string; seconds: number }[] {
  return [...stdout.matchAll(/^ ---> ([0-9a-f]{12}) \((\d+\.\d)s\)$/gm)].map((m) => ({ id: m[1]!, seconds: Number(m[2]) }));
}

test('every step prints the ID of the image after it and its time; strata save and COPY --from take those IDs', async () => {
  const ctx = await context({
    Dockerfile: ['FROM busybox', 'ENV STAGE=one', 'COPY a.txt /a.txt', 'RUN echo ran > /ran.txt', 'WORKDIR /srv', ''].join('\n'),
    'a.txt': 'from the context\n',
  });
  const build = await strataOk(['build', '--progress=plain', ctx]);
  const steps = stepIds(build.stdout);
  // One per step, FROM and ENV (no layer) included, each a different image.
  expect(steps).toHaveLength(5);
  expect(new Set(steps.map((s) => s.id)).size).toBe(5);
  for (const s of steps) expect(s.seconds).toBeLessThan(600);
  expect(build.stdout).toMatch(/^Step 2\/5 : ENV STAGE=one\n ---> [0-9a-f]{12} \(\d+\.\ds\)$/m);
  // The last step's image is the build's.
  expect(build.stdout).toContain(`Successfully built ${steps[4]!.id}`);

  // The ENV step's image: a config change only, yet an image docker could load.
  const tar = path.join(await scratchDir('save'), 'env.tar');
  await strataOk(['save', '-o', tar, steps[1]!.id]);
  expect((await fs.stat(tar)).size).toBeGreaterThan(0);
  const inspected = JSON.parse((await strataOk(['inspect', steps[1]!.id])).stdout) as { Config: { Env: string[] } }[];
  expect(inspected[0]!.Config.Env).toContain('STAGE=one');

  // The RUN step's image as a COPY source.
  const ctx2 = await context({ Dockerfile: `FROM busybox\nCOPY --from=${steps[3]!.id} /ran.txt /copied.txt\nRUN cat /copied.txt\n` });
  const second = await strataOk(['build', '--progress=plain', ctx2]);
  expect(second.stdout).toMatch(/^ran$/m);
});

test('-q prints only the image ID; --iidfile holds it', async () => {
  const ctx = await context({ Dockerfile: 'FROM busybox\nENV QUIET=1\n' });
  const dir = await scratchDir('iid');
  const iidfile = path.join(dir, 'iid');
  const r = await strata(['build', '-q', '--iidfile', iidfile, ctx]);
  expect({ code: r.exitCode, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  expect(r.stdout).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(await fs.readFile(iidfile, 'utf8')).toBe(r.stdout.trim());
  const inspected = JSON.parse((await strataOk(['inspect', r.stdout.trim()])).stdout) as { Id: string }[];
  expect(inspected[0]!.Id).toBe(r.stdout.trim());
});

test("--label sets labels on the image, after the Dockerfile's own, as steps of the build", async () => {
  const ctx = await context({ Dockerfile: 'FROM busybox\nLABEL team=dockerfile stage=one\n' });
  const r = await strataOk(['build', '--progress=plain', '--label', 'team=cli', '--label', 'org.example.version=$NOT_EXPANDED', ctx]);
  const steps = r.stdout.split('\n').filter((l) => l.startsWith('Step '));
  expect(steps.slice(-2)).toEqual(['Step 3/4 : LABEL org.example.version=$NOT_EXPANDED', 'Step 4/4 : LABEL team=cli']);
  const id = stepIds(r.stdout).at(-1)!.id;
  const inspected = JSON.parse((await strataOk(['inspect', id])).stdout) as { Config: { Labels: Record<string, string> } }[];
  expect(inspected[0]!.Config.Labels).toEqual({ team: 'cli', stage: 'one', 'org.example.version': '$NOT_EXPANDED' });
});

test('a failed build leaves no --iidfile behind, not even an old one', async () => {
  const ctx = await context({ Dockerfile: 'FROM busybox\nRUN exit 3\n' });
  const iidfile = path.join(await scratchDir('iid-failed'), 'iid');
  await fs.writeFile(iidfile, 'sha256:stale');
  const r = await strata(['build', '-q', '--iidfile', iidfile, ctx]);
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toBe('');
  expect(r.stderr).toMatch(/^error: Step 2\/2 : RUN exit 3 \(line 2\): .*exit code: 3$/m);
  await expect(fs.stat(iidfile)).rejects.toThrow(/ENOENT/);
});

test("builds ls lists this store's builds; --all lists every store's", async () => {
  // A second store on the same server, with its own task queue (its build runs in its client).
  const other = await scratchDir('store');
  const env = { STRATA_HOME: other, STRATA_TASK_QUEUE: 'strata-test-output-other' };
  stops.push(() => strata(['worker', 'stop'], { env }));
  const theirs = await strataOk(['build', '--progress=plain', await context({ Dockerfile: 'FROM scratch\nCOPY a /a\n', a: 'a' })], { env });
  const theirId = /^Build ID: (build-[0-9a-f]+)$/m.exec(theirs.stdout)![1]!;
  const ours = await strataOk(['build', '--progress=plain', await context({ Dockerfile: 'FROM busybox\nENV OURS=1\n' })]);
  const ourId = /^Build ID: (build-[0-9a-f]+)$/m.exec(ours.stdout)![1]!;

  // Visibility is eventually consistent: wait for both to be listed under --all.
  let all = '';
  for (let i = 0; i < 50; i++) {
    all = (await strataOk(['builds', 'ls', '--all'])).stdout;
    if (all.includes(theirId) && all.includes(ourId)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(all).toContain(theirId);
  expect(all).toContain(ourId);
  const mine = (await strataOk(['builds', 'ls'])).stdout;
  expect(mine).toContain(ourId);
  expect(mine).not.toContain(theirId);
  const theirList = (await strataOk(['builds', 'ls'], { env })).stdout;
  expect(theirList).toContain(theirId);
  expect(theirList).not.toContain(ourId);
});

test('a usage error prints the error and one line pointing at --help, not the help', async () => {
  const r = await strata(['build', '--no-such-flag', '.']);
  expect(r.exitCode).toBe(125);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toEqual(["error: unknown option '--no-such-flag'", "See 'strata build --help'."]);
});

test('--version prints one line', async () => {
  const r = await strataOk(['--version']);
  expect(r.stdout).toMatch(/^strata version \d+\.\d+\.\d+, Temporal TypeScript SDK \d+\.\d+\.\d+$/);
});
