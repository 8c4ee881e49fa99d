// A failed step keeps the build open for its retry window: `strata retry` (with a fixed
// context) runs the step again and completes the build, `abort` ends it, a window of 0 fails
// at once; builds are found again through Temporal's visibility.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { strata, strataOk } from '../helpers/cli.js';
import { startRegistry } from '../helpers/registry.js';
import { stepStarts } from '../helpers/temporal.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function context(files: Record<string, string>): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-retry-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}

function buildId(stdout: string): string {
  const m = /^Build ID: (build-[0-9a-f]+)$/m.exec(stdout);
  if (!m) throw new Error(`no build ID in:\n${stdout}`);
  return m[1]!;
}

/** The IDs `strata builds ls ARGS` lists. */
async function listed(args: string[]): Promise<string[]> {
  const r = await strataOk(['builds', 'ls', ...args]);
  return r.stdout
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/)[0]!)
    .filter(Boolean);
}

/** Content no other build has: each test's steps miss the instruction cache on its first build. */
const unique = () => randomBytes(4).toString('hex');

// Step 4 reads a file of the context that the first context lacks.
const COPY_DOCKERFILE = ['FROM busybox', 'COPY a.txt /a.txt', 'RUN cat /a.txt > /b.txt', 'COPY flag /flag', 'RUN cat /flag /b.txt > /both'].join('\n');

test('a COPY whose source is missing waits; strata retry --context with the file completes the build, running the finished steps once', async () => {
  const a = `a ${unique()}\n`;
  const broken = await context({ Dockerfile: COPY_DOCKERFILE, 'a.txt': a });
  const fixed = await context({ Dockerfile: COPY_DOCKERFILE, 'a.txt': a, flag: 'flag\n' });
  const tag = `retry-copy:${path.basename(broken).slice(-6).toLowerCase()}`;

  const first = await strata(['build', '--retry-window', '1h', '-t', tag, broken]);
  expect(first.exitCode).toBe(2);
  const id = buildId(first.stdout);
  expect(first.stderr).toContain('Step 4/5 : COPY flag /flag (line 4): ');
  expect(first.stderr).toContain('The build is waiting for a decision until');
  expect(first.stderr).toContain(`strata retry ${id}`);
  expect(first.stderr).toContain(`/workflows/${id}`);

  expect(await listed(['--status', 'waiting'])).toContain(id);
  expect(await listed(['--tag', tag])).toContain(id);
  const waiting = await strataOk(['builds', 'describe', id]);
  expect(waiting.stdout).toMatch(/Status: +waiting/);
  expect(waiting.stdout).toMatch(/4 +failed .*COPY flag \/flag/);

  // Attaching again says the same: the build still waits.
  const attached = await strata(['attach', id]);
  expect(attached.exitCode).toBe(2);
  expect(attached.stdout).toContain('Step 3/5 : RUN cat /a.txt > /b.txt');

  const retried = await strata(['retry', id, '--context', fixed]);
  expect({ code: retried.exitCode, stderr: retried.stderr }).toEqual({ code: 0, stderr: '' });
  expect(retried.stdout).toContain('Step 5/5 : RUN cat /flag /b.txt > /both');
  expect(retried.stdout).toMatch(/Successfully built [0-9a-f]{12}/);

  expect(Object.fromEntries(await stepStarts(id))).toEqual({ 2: 1, 3: 1, 4: 2, 5: 1 });
  expect(await listed(['--status', 'succeeded', '--tag', tag])).toEqual([id]);
  expect(await listed(['--status', 'waiting'])).not.toContain(id);
  const done = await strataOk(['builds', 'describe', id]);
  expect(done.stdout).toMatch(/Status: +succeeded/);
  expect(done.stdout).toMatch(/Image ID: +sha256:[0-9a-f]{64}/);
  expect(done.stdout).toMatch(/4 +done .*COPY flag \/flag.* runs=2/);
  // The image has the file the fixed context gave it.
  const run = await strataOk(['build', '-t', `${tag}-check`, await context({ Dockerfile: `FROM ${tag}\nRUN grep -q flag /both && grep -q a /both` })]);
  expect(run.stdout).toContain('Successfully built');
});

// A RUN that reads the context through a bind mount: a new context changes what it sees.
const runDockerfile = () => ['FROM busybox', `RUN echo one ${unique()} > /one`, 'RUN --mount=type=bind,target=/ctx test -f /ctx/flag', 'RUN echo two > /two'].join('\n');

test('a failing RUN that waits is ended by strata abort with its error', async () => {
  const ctx = await context({ Dockerfile: runDockerfile() });
  const first = await strata(['build', '--retry-window', '1h', ctx]);
  expect(first.exitCode).toBe(2);
  const id = buildId(first.stdout);

  const aborted = await strata(['abort', id]);
  expect(aborted.exitCode).toBe(0);
  expect(aborted.stderr).toContain(`Build ${id} aborted: Step 3/4 : RUN --mount=type=bind,target=/ctx test -f /ctx/flag (line 3)`);
  expect(await listed(['--status', 'failed'])).toContain(id);
  expect(await listed(['--status', 'waiting'])).not.toContain(id);
  // Nothing waits any more: a retry is refused.
  const late = await strata(['retry', id]);
  expect(late.exitCode).toBe(1);
  expect(late.stderr).toContain('is not waiting for a retry');
  expect(Object.fromEntries(await stepStarts(id))).toEqual({ 2: 1, 3: 1 });
});

test('a failing RUN retried with a context that has the file completes; --retry-window 0 fails at once', async () => {
  const dockerfile = runDockerfile();
  const broken = await context({ Dockerfile: dockerfile });
  const fixed = await context({ Dockerfile: dockerfile, flag: '' });

  const now = await strata(['build', '--retry-window', '0', broken]);
  expect(now.exitCode).toBe(1);
  expect(now.stderr).toContain('error: Step 3/4 : RUN --mount=type=bind,target=/ctx test -f /ctx/flag (line 3)');
  expect(now.stderr).not.toContain('waiting');
  expect(await listed(['--status', 'failed'])).toContain(buildId(now.stdout));

  const first = await strata(['build', '--retry-window', '10m', broken]);
  expect(first.exitCode).toBe(2);
  const id = buildId(first.stdout);
  const retried = await strata(['retry', id, '--context', fixed]);
  expect(retried.exitCode).toBe(0);
  expect(retried.stdout).toContain('Successfully built');
  // Step 2 finished in the build that failed at once: this one found it in the instruction cache.
  expect(first.stdout).toMatch(/Step 2\/4 : RUN echo one \w+ > \/one\n ---> Using cache\n/);
  expect(Object.fromEntries(await stepStarts(id))).toEqual({ 3: 2, 4: 1 });
});

test("a build with --cache-to that waits is exported by the retry that completes it, with the retrying client's credentials", async () => {
  const registry = await startRegistry();
  try {
    const dockerfile = runDockerfile();
    const broken = await context({ Dockerfile: dockerfile });
    const fixed = await context({ Dockerfile: dockerfile, flag: '' });
    const repo = `${registry.address}/cache/retried`;
    const first = await strata(['build', '--retry-window', '10m', '--cache-to', `type=registry,ref=${repo}`, broken]);
    expect(first.exitCode).toBe(2);
    expect(first.stderr).not.toContain('Exported');
    const retried = await strata(['retry', buildId(first.stdout), '--context', fixed]);
    expect(retried.exitCode).toBe(0);
    // Steps 2 and 4 (the retried step ran with another context than its key was made from: it has no entry).
    expect(retried.stderr).toContain(`Exported 2 cache entries to ${repo}`);
    const tags = (await (await fetch(`http://${registry.address}/v2/cache/retried/tags/list`)).json()) as { tags?: string[] };
    expect((tags.tags ?? []).filter((t) => t.startsWith('cache-'))).toHaveLength(2);
    expect((tags.tags ?? []).filter((t) => t.startsWith('layer-')).length).toBeGreaterThanOrEqual(2);
  } finally {
    await registry.stop();
  }
});

test('abort works after the client that ran the build has exited, from a new background worker', async () => {
  const ctx = await context({ Dockerfile: 'FROM busybox\nRUN exit 4\n' });
  // A queue no shared worker polls: `strata build` starts the background worker for it; once
  // that is stopped, abort must find the waiting build answered by a new one.
  const env = { STRATA_TASK_QUEUE: `lonely-${path.basename(ctx).toLowerCase()}` };
  const first = await strata(['build', '--retry-window', '10m', ctx], { env });
  expect(first.exitCode).toBe(2);
  await strataOk(['worker', 'stop'], { env });
  const aborted = await strata(['abort', buildId(first.stdout)], { env });
  await strata(['worker', 'stop'], { env });
  expect(aborted.stderr).not.toContain('ServiceError');
  expect(aborted.exitCode).toBe(0);
  expect(aborted.stderr).toContain('aborted: Step 2/2 : RUN exit 4 (line 2)');
});
