// `strata schedule`: Temporal Schedules on the dev server that run scheduledBuild on the
// shared test worker. Runs are started with `trigger --wait` wherever the interval itself is
// not what is tested; every schedule a test makes is removed at the end.
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { strata, strataOk, type RunResult } from '../helpers/cli.js';

const schedules: string[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const id of schedules) await strata(['schedule', 'rm', id]);
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function scratchDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-schedule-'));
  dirs.push(dir);
  return dir;
}

async function contextWith(files: Record<string, string>): Promise<string> {
  const dir = await scratchDir();
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(dir, name), content);
  return dir;
}

/** Creates a schedule that afterAll removes; image IDs are reproducible (SOURCE_DATE_EPOCH). */
async function create(id: string, ...args: string[]): Promise<RunResult> {
  schedules.push(id);
  return strataOk(['schedule', 'create', id, ...args], { env: { SOURCE_DATE_EPOCH: '0' } });
}

async function trigger(id: string): Promise<string> {
  return (await strataOk(['schedule', 'trigger', id, '--wait'])).stdout;
}

/** The short image ID a run's result line names. */
function builtId(out: string): string {
  const m = /^built ([0-9a-f]{12})\b/m.exec(out);
  if (!m) throw new Error(`no "built" result in:\n${out}`);
  return m[1]!;
}

/** The IMAGE ID column of `strata images` for REPO:TAG. */
async function imageOf(repo: string, tag: string): Promise<string | undefined> {
  const { stdout } = await strataOk(['images']);
  const row = stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((c) => c[0] === repo && c[1] === tag);
  return row?.[2];
}

/** The result column of describe's "Recent runs", newest first. */
async function recentRuns(id: string): Promise<string[]> {
  const { stdout } = await strataOk(['schedule', 'describe', id]);
  const lines = stdout.split('\n');
  const start = lines.indexOf('Recent runs (newest first):');
  if (start < 0) return [];
  return lines
    .slice(start + 1)
    .filter((l) => l.trim() !== '')
    .map((l) => l.trim().split(/\s+/).slice(2).join(' '));
}

/** Polls until `check` holds: schedules fire and list on the server's time, not ours. */
async function eventually<T>(what: string, check: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function listed(id: string): Promise<string[] | undefined> {
  const { stdout } = await strataOk(['schedule', 'ls']);
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((c) => c[0] === id);
}

async function git(cwd: string, ...args: string[]): Promise<string> {
  const env = { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.com' };
  return (await execa('git', args, { cwd, env })).stdout;
}

describe('strata schedule', () => {
  test('an --every 5s schedule fires by itself, tags its image, and rm deletes it', async () => {
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\nCOPY hello.txt /\n', 'hello.txt': 'every five seconds\n' });
    await create('every-5s', '--every', '5s', '-t', 'sched-every:1', ctx);
    expect(await listed('every-5s')).toEqual(expect.arrayContaining(['every-5s', 'active', 'every', '5s', 'always']));
    const built = await eventually('a run of every-5s that built', async () => (await recentRuns('every-5s')).find((r) => r.startsWith('built ')));
    expect(built).toMatch(/ \(sched-every:1\) by schedule-every-5s-/);
    expect(await imageOf('sched-every', '1')).toBe(builtId(built));

    await strataOk(['schedule', 'rm', 'every-5s']);
    const gone = await strata(['schedule', 'describe', 'every-5s']);
    expect(gone.exitCode).toBe(1);
    expect(gone.stderr).toContain('no schedule every-5s');
    await eventually('every-5s to leave the list', async () => (await listed('every-5s')) === undefined);
  });

  test('a git source with --when changed: builds, skips while the ref stays, builds when it moves', async () => {
    const root = await scratchDir();
    const bare = path.join(root, 'app.git');
    const work = path.join(root, 'work');
    await git(root, 'init', '-q', '--bare', '-b', 'main', bare);
    await git(root, 'init', '-q', '-b', 'main', work);
    await fs.writeFile(path.join(work, 'Dockerfile'), 'FROM busybox\nCOPY version.txt /\n');
    await fs.writeFile(path.join(work, 'version.txt'), 'one\n');
    await git(work, 'add', '.');
    await git(work, 'commit', '-q', '-m', 'one');
    await git(work, 'push', '-q', bare, 'main');

    // Paused: only trigger runs it, so the test decides when runs happen.
    await create('git-changed', '--every', '1h', '--paused', '--when', 'changed', '-t', 'sched-git:edge', `file://${bare}#main`);
    const first = await trigger('git-changed');
    const firstId = builtId(first);
    expect(await imageOf('sched-git', 'edge')).toBe(firstId);

    const second = await trigger('git-changed');
    expect(second).toMatch(/^skipped: nothing changed since build schedule-git-changed-\S+-build/m);
    expect(second).toContain(`(image ${firstId})`);

    await fs.writeFile(path.join(work, 'version.txt'), 'two\n');
    await git(work, 'commit', '-q', '-am', 'two');
    await git(work, 'push', '-q', bare, 'main');
    const head = await git(work, 'rev-parse', 'HEAD');
    const third = await trigger('git-changed');
    const thirdId = builtId(third);
    expect(third).toContain(` at ${head.slice(0, 12)} `);
    // SOURCE_DATE_EPOCH makes the ID depend on content alone: a new ID is new content.
    expect(thirdId).not.toBe(firstId);
    expect(await imageOf('sched-git', 'edge')).toBe(thirdId);

    const runs = await recentRuns('git-changed');
    expect(runs.map((r) => r.split(' ')[0])).toEqual(['built', 'skipped:', 'built']);
  });

  test('a directory read at each run: --when changed rebuilds for a changed file and for a new base image', async () => {
    const rootfs = process.env.STRATA_TEST_BUSYBOX_TAR!;
    await strataOk(['import', '--change', 'CMD ["sh"]', rootfs, 'sched-base:latest']);
    const ctx = await contextWith({ Dockerfile: 'FROM sched-base\nCOPY app.txt /\n', 'app.txt': 'v1\n' });
    await create('dir-changed', '--every', '1h', '--paused', '--when', 'changed', '--source-mode', 'dir', '-t', 'sched-dir:latest', ctx);

    const v1 = builtId(await trigger('dir-changed'));
    expect(await trigger('dir-changed')).toMatch(/^skipped: /m);

    await fs.writeFile(path.join(ctx, 'app.txt'), 'v2\n');
    const v2 = builtId(await trigger('dir-changed'));
    expect(v2).not.toBe(v1);
    expect(await trigger('dir-changed')).toMatch(/^skipped: /m);

    // The same files on a base that changed: the base's digest is an input.
    await strataOk(['import', '--change', 'CMD ["sh"]', '--change', 'ENV BASE=2', rootfs, 'sched-base:latest']);
    const v3 = builtId(await trigger('dir-changed'));
    expect(v3).not.toBe(v2);
    expect(await imageOf('sched-dir', 'latest')).toBe(v3);
  });

  test('a snapshot builds the files as they were at create', async () => {
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\nCOPY app.txt /\n', 'app.txt': 'at create\n' });
    await create('snapshot', '--every', '1h', '--paused', '--when', 'changed', '-t', 'sched-snap:1', ctx);
    const first = builtId(await trigger('snapshot'));
    await fs.writeFile(path.join(ctx, 'app.txt'), 'after create\n');
    expect(await trigger('snapshot')).toContain(`skipped: nothing changed`);
    expect(await imageOf('sched-snap', '1')).toBe(first);
  });

  test('a failing build: trigger exits 1 naming the step, describe shows the failure', async () => {
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\nRUN exit 3\n' });
    await create('failing', '--cron', '0 0 1 1 *', '-t', 'sched-fail:1', ctx);
    const r = await strata(['schedule', 'trigger', 'failing', '--wait']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/error: run schedule-failing-\S+ failed: Step 2\/2 : RUN exit 3 \(line 2\): .*exit code: 3/);
    const [run] = await recentRuns('failing');
    expect(run).toMatch(/^failed: Step 2\/2 : RUN exit 3 \(line 2\)/);
    expect(await imageOf('sched-fail', '1')).toBeUndefined();
  });

  test('pause and unpause: describe and ls show the state and the note', async () => {
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\n' });
    await create('pausable', '--cron', '0 3 * * *', ctx);
    expect((await strataOk(['schedule', 'describe', 'pausable'])).stdout).toMatch(/^State: +active$/m);

    await strataOk(['schedule', 'pause', 'pausable', '--note', 'registry maintenance']);
    const paused = (await strataOk(['schedule', 'describe', 'pausable'])).stdout;
    expect(paused).toMatch(/^State: +paused \(registry maintenance\)$/m);
    expect(paused).not.toMatch(/^Next run:/m);
    await eventually('ls to show pausable paused', async () => (await listed('pausable'))?.[1] === 'paused');

    await strataOk(['schedule', 'unpause', 'pausable']);
    const active = (await strataOk(['schedule', 'describe', 'pausable'])).stdout;
    expect(active).toMatch(/^State: +active$/m);
    expect(active).toMatch(/^Next run: +\d{4}-\d\d-\d\dT03:00:00\.000Z$/m);
    await eventually('ls to show pausable active', async () => (await listed('pausable'))?.[1] === 'active');
  });

  test('bad input is refused with a clear error and creates nothing', async () => {
    const ctx = await contextWith({ Dockerfile: 'FROM busybox\n' });
    const refused = async (args: string[], message: string) => {
      const r = await strata(['schedule', ...args]);
      expect({ args, exitCode: r.exitCode, stderr: r.stderr }).toEqual({ args, exitCode: 1, stderr: expect.stringContaining(message) });
    };
    await refused(['create', 'bad', '--every', '1h', '--push', ctx], '--push needs a name to push to: -t REGISTRY/REPO:TAG');
    await refused(['create', 'bad', '--every', '1h', '--cron', '0 3 * * *', ctx], 'give exactly one of --cron EXPR and --every DURATION');
    await refused(['create', 'bad', ctx], 'give exactly one of --cron EXPR and --every DURATION');
    await refused(['create', 'bad', '--every', 'soon', ctx], 'invalid duration "soon"');
    await refused(['create', 'bad', '--cron', 'at noon', ctx], 'schedule create: ');
    await refused(['create', 'bad', '--every', '1h', '--when', 'sometimes', ctx], '--when must be always or changed');
    await refused(['create', 'bad id', '--every', '1h', ctx], 'invalid ID "bad id"');
    await refused(['create', 'bad', '--every', '1h', path.join(ctx, 'missing')], 'is not a directory');
    await refused(['create', 'bad', '--every', '1h', '--source-mode', 'dir', 'file:///nowhere/repo.git#main'], 'is a git URL');
    await refused(['create', 'bad', '--every', '1h', '--source-mode', 'git', ctx], 'is not a git URL');
    await refused(['create', 'bad', '--every', '1h', '--network', 'bogus', ctx], '--network: expected default, host or none');
    // The Dockerfile is parsed at create: a typo shows now, not at the first run.
    const typo = await contextWith({ Dockerfile: 'FROM busybox\nRUNN true\n' });
    await refused(['create', 'bad', '--every', '1h', typo], 'Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)');
    await refused(['describe', 'bad'], 'no schedule bad');
    await refused(['rm', 'bad'], 'no schedule bad');

    await create('taken', '--every', '1h', '--paused', ctx);
    await refused(['create', 'taken', '--every', '1h', ctx], 'schedule taken exists');
  });
});
