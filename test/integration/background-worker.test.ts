// The store's background worker, end to end through the real CLI: `strata build` on a store
// and queue no worker serves starts it detached, later builds reuse it, `strata worker
// status|stop` see and end it, and what a killed worker or an older strata left is replaced.
// Its own STRATA_HOME and task queue: the shared test worker must not serve these builds.
import { readFileSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { strata, strataOk } from '../helpers/cli.js';

let home: string;
let ctx: string;
const queue = `bg-${process.pid}`;
const env = () => ({ STRATA_HOME: home, STRATA_TASK_QUEUE: queue });

beforeAll(async () => {
  home = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-bg-home-'));
  ctx = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-bg-ctx-'));
  await fs.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox\nRUN echo alone > /a\nCOPY f /f\n');
  await fs.writeFile(path.join(ctx, 'f'), 'alone\n');
  await strataOk(['import', '--change', 'CMD ["sh"]', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox:latest'], { env: env() });
});

afterAll(async () => {
  await strata(['worker', 'stop', '--all'], { env: env() });
  await fs.rm(ctx, { recursive: true, force: true });
  await fs.rm(home, { recursive: true, force: true });
});

/** pids of the background workers `strata worker status` lists for this queue. */
async function backgroundWorkers(): Promise<number[]> {
  const r = await strata(['worker', 'status'], { env: env() });
  return [...r.stdout.matchAll(/^pid (\d+): task queue "([^"]+)" .*\(background/gm)].filter((m) => m[2] === queue).map((m) => Number(m[1]));
}

/** True while the process runs: an exited worker stays a zombie until init reaps it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

async function build(): Promise<{ stdout: string; stderr: string }> {
  const r = await strataOk(['build', '-t', `bg-${process.pid}`, ctx], { env: env() });
  expect(r.stdout).toContain(`Successfully tagged bg-${process.pid}:latest`);
  return r;
}

/** The single record file of the queue's background worker in the store. */
async function recordOf(pid: number): Promise<string> {
  const dir = path.join(home, 'workers');
  for (const name of await fs.readdir(dir)) {
    if (!name.endsWith('.json')) continue;
    const file = path.join(dir, name);
    const rec = JSON.parse(await fs.readFile(file, 'utf8')) as { pid: number };
    if (rec.pid === pid) return file;
  }
  throw new Error(`no record of worker ${pid} in ${dir}`);
}

test('a build with no worker starts one in the background; later builds reuse it; worker status shows it and worker stop ends it', async () => {
  expect((await strata(['worker', 'status'], { env: env() })).exitCode).toBe(3);
  const first = await build();
  expect(first.stderr).toContain(`Starting a background worker for task queue "${queue}"`);
  const [pid, ...more] = await backgroundWorkers();
  expect(more).toEqual([]);
  // It outlived the command that started it, and logs where it said.
  expect(alive(pid!)).toBe(true);
  expect(await fs.readFile(path.join(home, 'worker.log'), 'utf8')).toContain(`background worker (pid ${pid}) strata worker: polling task queue "${queue}"`);

  const again = await build();
  expect(again.stderr).not.toContain('Starting a background worker');
  expect(await backgroundWorkers()).toEqual([pid]);

  const status = await strataOk(['worker', 'status'], { env: env() });
  expect(status.stdout).toMatch(new RegExp(`^pid ${pid}: task queue "${queue}" .*\\(background, log .*worker\\.log\\).*memory`, 'm'));

  const stopped = await strataOk(['worker', 'stop'], { env: env() });
  expect(stopped.stdout).toContain(`Worker stopped: pid ${pid}`);
  expect(alive(pid!)).toBe(false);
  expect((await strata(['worker', 'status'], { env: env() })).exitCode).toBe(3);
});

test('a killed background worker is not taken for one: its leftover record goes, and the next build starts a new worker', async () => {
  await build();
  const [pid] = await backgroundWorkers();
  const record = await recordOf(pid!);
  // SIGKILL: no exit handler runs, the record stays behind, naming a dead pid.
  process.kill(pid!, 'SIGKILL');
  while (alive(pid!)) await new Promise((r) => setTimeout(r, 50));
  expect(await fs.stat(record).then(() => true)).toBe(true);

  expect((await strata(['worker', 'status'], { env: env() })).exitCode).toBe(3);
  await expect(fs.stat(record)).rejects.toThrow();
  const next = await build();
  expect(next.stderr).toContain('Starting a background worker');
  const [fresh, ...more] = await backgroundWorkers();
  expect(more).toEqual([]);
  expect(fresh).not.toBe(pid);
  expect(alive(fresh!)).toBe(true);
});

test('a background worker of an older strata is stopped and replaced, not reused', async () => {
  const [old] = await backgroundWorkers();
  expect(old).toBeDefined();
  // What strata wrote before records named their build: no `build` field.
  const file = await recordOf(old!);
  const rec = JSON.parse(await fs.readFile(file, 'utf8')) as Record<string, unknown>;
  delete rec.build;
  await fs.writeFile(file, JSON.stringify(rec));

  const r = await build();
  expect(r.stderr).toContain(`Stopping the background worker (pid ${old}) of another build of strata`);
  expect(r.stderr).toContain('Starting a background worker');
  expect(alive(old!)).toBe(false);
  const [fresh, ...more] = await backgroundWorkers();
  expect(more).toEqual([]);
  expect(fresh).not.toBe(old);
  // The new one is of this build: the next build keeps it.
  const again = await build();
  expect(again.stderr).not.toContain('Stopping the background worker');
  expect(await backgroundWorkers()).toEqual([fresh]);
});

test('two builds racing on a queue no worker serves start one background worker', async () => {
  await strataOk(['worker', 'stop'], { env: env() });
  const [a, b] = await Promise.all([build(), build()]);
  expect([a.stderr, b.stderr].filter((e) => e.includes('Starting a background worker'))).toHaveLength(1);
  expect(await backgroundWorkers()).toHaveLength(1);
});
