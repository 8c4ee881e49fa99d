// Workers on several machines: three `strata worker` processes on a task queue of their own,
// each with its own STRATA_HOME (a machine's disk) and a CLI with a fourth, sharing contexts,
// layers and cache entries through Debian's docker-registry (STRATA_REMOTE). The steps of a
// stage stay on the worker that ran its first step while that worker lives; a worker killed
// with SIGKILL in the middle of a RUN is replaced by another that has none of its disk, and
// the build ends with the image ID a single worker gives.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import { STRATA_BIN, strataOk } from '../helpers/cli.js';
import { firstTimeout, runningOn, startFleetWorker, stepAttempts, type FleetWorker, type StepAttempt } from '../helpers/fleet.js';
import { findContainer, mountPoints, runcContainers, until } from '../helpers/host.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';

const EPOCH = '1700000000';

let workers: FleetWorker[] = [];
let builds: ResultPromise[] = [];
let dirs: string[] = [];
let queue = '';
let registry: TestRegistry;
/** The remote store's repository, and the base image every Dockerfile here builds on. */
let remote = '';
let base = '';
/** The CLI's machine. */
let cliHome = '';

beforeAll(async () => {
  registry = await startRegistry();
  const m = randomBytes(4).toString('hex');
  remote = `${registry.address}/strata-fleet`;
  base = `${registry.address}/busybox:${m}`;
  // A remote store's bases are registry references: busybox goes there from the CLI's store.
  cliHome = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-fleet-cli-'));
  await strataOk(['import', '--change', 'CMD ["sh"]', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox:latest'], { env: { STRATA_HOME: cliHome } });
  await strataOk(['push', 'busybox:latest', base], { env: { STRATA_HOME: cliHome } });
});

/**
 * A CLI whose progress query goes unanswered for a while (the workflow's worker was killed)
 * starts its store's background worker: stop it, whatever its queue.
 */
async function stopCliWorkers(): Promise<void> {
  if (cliHome) await strataOk(['worker', 'stop', '--all'], { env: { STRATA_HOME: cliHome } });
}

afterAll(async () => {
  await stopCliWorkers();
  await registry?.stop();
  if (cliHome) await fs.rm(cliHome, { recursive: true, force: true });
});

beforeEach(() => {
  queue = `fleet-${randomBytes(4).toString('hex')}`;
});

afterEach(async () => {
  // Builds first: a build left without a worker would start a background one.
  for (const b of builds) {
    b.kill('SIGKILL');
    await b.catch(() => undefined);
  }
  builds = [];
  await stopCliWorkers();
  for (const w of workers) await w.stop();
  workers = [];
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  dirs = [];
});

/** A worker on a machine of its own: a new STRATA_HOME (or `home`, a machine that comes back). */
async function startWorker(home?: string): Promise<FleetWorker> {
  if (!home) {
    home = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-fleet-worker-'));
    dirs.push(home);
  }
  const w = await startFleetWorker({ STRATA_TASK_QUEUE: queue, STRATA_HOME: home, STRATA_REMOTE: remote });
  workers.push(w);
  return w;
}

async function startWorkers(n: number): Promise<FleetWorker[]> {
  const started: FleetWorker[] = [];
  for (let i = 0; i < n; i++) started.push(await startWorker());
  return started;
}

async function context(dockerfile: string, files: Record<string, string> = {}): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-fleet-'));
  dirs.push(dir);
  await fs.writeFile(path.join(dir, 'Dockerfile'), dockerfile);
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}

/** `strata build` in the background (`env` over the CLI machine's), its stdout collected as it arrives. */
function startBuild(ctx: string, env: NodeJS.ProcessEnv = {}, flags: string[] = []): { cli: ResultPromise; stdout: () => string } {
  const cli = execa('node', [STRATA_BIN, 'build', ...flags, ctx], {
    reject: false,
    env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH, STRATA_HOME: cliHome, STRATA_TASK_QUEUE: queue, STRATA_REMOTE: remote, ...env },
  });
  builds.push(cli);
  let stdout = '';
  cli.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  return { cli, stdout: () => stdout };
}

async function built(build: { cli: ResultPromise; stdout: () => string }): Promise<{ workflowId: string; imageId: string }> {
  const r = await build.cli;
  if (r.exitCode !== 0)
    throw new Error(`strata build exited ${r.exitCode}\n${build.stdout()}\n${String(r.stderr)}\n${workers.map((w) => `worker ${w.identity}:\n${w.log()}`).join('\n')}`);
  const workflowId = /Build ID: (\S+)/.exec(build.stdout())![1]!;
  const connection = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
  try {
    const { imageId } = await new Client({ connection }).workflow.getHandle(workflowId).result();
    return { workflowId, imageId: imageId as string };
  } finally {
    await connection.close();
  }
}

/** The image ID the build gives on one machine (the test environment's store and worker, no remote store), every step run. */
async function singleWorkerImageId(ctx: string): Promise<string> {
  const env = { STRATA_HOME: process.env.STRATA_HOME!, STRATA_TASK_QUEUE: process.env.STRATA_TASK_QUEUE ?? 'strata', STRATA_REMOTE: '' };
  return (await built(startBuild(ctx, env, ['--no-cache']))).imageId;
}

/** Step numbers of each stage of a Dockerfile whose instructions are one a line (a FROM starts a stage). */
function stagesOf(dockerfile: string): number[][] {
  const stages: number[][] = [];
  dockerfile
    .trim()
    .split('\n')
    .forEach((line, i) => {
      if (/^FROM /i.test(line)) stages.push([]);
      stages[stages.length - 1]!.push(i + 1);
    });
  return stages;
}

/** The attempts of one stage's steps. */
function ofStage(attempts: StepAttempt[], stage: number[]): StepAttempt[] {
  return attempts.filter((a) => a.steps.some((n) => stage.includes(n)));
}

test('the steps of one stage run on the worker that ran its first, through that worker’s own queue', async () => {
  const marker = randomBytes(4).toString('hex');
  const dockerfile = [
    `FROM ${base} AS a`,
    `RUN echo a1 ${marker} > /a1`,
    'COPY f /f',
    'RUN cat /a1 /f > /a',
    'WORKDIR /w',
    'RUN echo a3 > a3',
    `FROM ${base} AS b`,
    `RUN echo b1 ${marker} > /b1`,
    'RUN echo b2 > /b2',
    `FROM ${base}`,
    'COPY --from=a /a /a',
    'COPY --from=b /b2 /b2',
    'RUN cat /a /b2',
  ].join('\n');
  const ctx = await context(dockerfile, { f: 'f\n' });
  const fleet = await startWorkers(3);
  const { workflowId, imageId } = await built(startBuild(ctx));

  const attempts = await stepAttempts(workflowId);
  for (const stage of stagesOf(dockerfile)) {
    const ran = ofStage(attempts, stage);
    expect(ran.length).toBeGreaterThan(1);
    const worker = fleet.find((w) => w.identity === ran[0]!.identity)!;
    expect(worker).toBeDefined();
    // The first goes to the shared queue (any worker); the rest to the worker that took it.
    expect(ran[0]!.queue).toBe(queue);
    const rest = ran.slice(1).map((a) => ({ steps: a.steps, queue: a.queue, identity: a.identity }));
    expect(rest).toEqual(rest.map((a) => ({ ...a, queue: worker.ownQueue, identity: worker.identity })));
    expect(ran.every((a) => a.attempt === 1)).toBe(true);
  }
  expect(imageId).toBe(await singleWorkerImageId(ctx));
});

test('a worker killed with SIGKILL in the middle of a RUN: another finishes the build with the same image ID', async () => {
  const marker = `fleet-kill-${randomBytes(4).toString('hex')}`;
  // The last stage reads the first: what the dead worker made, another machine uses.
  const dockerfile = [
    `FROM ${base} AS build`,
    `RUN echo one ${marker} > /one`,
    `RUN echo started ${marker} && sleep 8 && echo two > /two`,
    'RUN echo three > /three',
    `FROM ${base}`,
    'COPY --from=build /one /two /three /r/',
    'RUN cat /r/one /r/two /r/three',
  ].join('\n');
  const ctx = await context(dockerfile);
  const fleet = await startWorkers(3);
  const build = startBuild(ctx);
  await until('the RUN to start', async () => (build.stdout().includes(`started ${marker}`) ? true : undefined));
  const container = await until('the runc container', () => findContainer(marker));
  const workflowId = /Build ID: (\S+)/.exec(build.stdout())![1]!;
  const identity = await until('the RUN’s worker', () => runningOn(workflowId, 'runStep'));
  const doomed = fleet.find((w) => w.identity === identity)!;
  expect(doomed).toBeDefined();
  await doomed.kill();
  const killedAt = new Date();

  const { imageId } = await built(build);
  const attempts = await stepAttempts(workflowId);
  const runs = attempts.filter((a) => a.type === 'runStep');
  // RUN one and the killed RUN on the doomed worker's own queue; the killed one again on the
  // shared queue, taken by a live worker, and the last RUN on that worker's own queue.
  expect(runs.map((r) => [r.steps[0], r.identity === doomed.identity])).toEqual([
    [2, true],
    [3, true],
    [3, false],
    [4, false],
    [7, false],
  ]);
  expect(runs[1]!.queue).toBe(doomed.ownQueue);
  expect(runs[2]!.queue).toBe(queue);
  // The stage's next RUN stays with the worker that took the killed one, on its own queue.
  expect(runs[3]!.identity).toBe(runs[2]!.identity);
  expect([queue, doomed.ownQueue]).not.toContain(runs[3]!.queue);
  const timedOut = (await firstTimeout(workflowId))!;
  process.stderr.write(
    `fleet: the killed RUN timed out ${((timedOut.getTime() - killedAt.getTime()) / 1000).toFixed(1)} s after the kill and started again on another worker ${((runs[2]!.startedAt.getTime() - killedAt.getTime()) / 1000).toFixed(1)} s after it\n`,
  );

  expect(imageId).toBe(await singleWorkerImageId(ctx));

  // The dead machine comes back: its worker's start removes the container and mount it left.
  await startWorker(doomed.home);
  expect((await runcContainers()).map((c) => c.id)).not.toContain(container.id);
  expect(await mountPoints()).not.toContain(container.rootfs);
});
