// Durable builds: a worker killed with SIGKILL in the middle of a RUN, and a Temporal server
// killed and restarted on its database, both lose nothing. The build finishes with the image
// ID an uninterrupted build gives, steps finished before the kill are not run again, and the
// dead worker's container, mount and temp files are gone.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa, type ResultPromise } from 'execa';
import { findTemporalCli } from '../../worker/temporal.js';
import { commandLines, findContainer, mountPoints, runcContainers, until } from '../helpers/host.js';
import { STRATA_BIN } from '../helpers/cli.js';
import { stepStarts } from '../helpers/temporal.js';

const EPOCH = '1700000000';

/** A `strata worker` process of its own; resolves once it polls. */
async function startWorker(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; log: () => string }> {
  let log = '';
  const child = spawn('node', [STRATA_BIN, 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  await until('the worker to poll', async () => {
    if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}:\n${log}`);
    return log.includes('polling task queue') ? true : undefined;
  });
  return { child, log: () => log };
}

async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** `strata build` in the background, its stdout collected as it arrives. */
function startBuild(ctx: string, env: NodeJS.ProcessEnv, flags: string[] = []): { cli: ResultPromise; stdout: () => string } {
  const cli = execa('node', [STRATA_BIN, 'build', ...flags, ctx], { reject: false, env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH, ...env } });
  let stdout = '';
  cli.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  return { cli, stdout: () => stdout };
}

async function result(port: string, workflowId: string): Promise<{ imageId: string }> {
  const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
  try {
    return await new Client({ connection }).workflow.getHandle(workflowId).result();
  } finally {
    await connection.close();
  }
}

function buildId(stdout: string): string {
  return /Build ID: (\S+)/.exec(stdout)![1]!;
}

async function dockerfileContext(marker: string): Promise<string> {
  const ctx = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-crash-'));
  // The marker in every step keeps the instruction cache out: each build here runs its steps.
  await fs.writeFile(
    path.join(ctx, 'Dockerfile'),
    `FROM busybox\nRUN echo one ${marker} > /one\nRUN echo started ${marker} && sleep 8 && echo two > /two\nRUN echo three > /three\n`,
  );
  return ctx;
}

/**
 * The image ID the same Dockerfile gives when nothing interrupts it (the shared worker), every
 * step run again (--no-cache), not taken from the interrupted build's cache entries.
 */
async function uninterruptedImageId(ctx: string): Promise<string> {
  const ref = startBuild(ctx, {}, ['--no-cache']);
  const r = await ref.cli;
  expect(r.exitCode).toBe(0);
  return (await result(process.env.STRATA_TEMPORAL_PORT!, buildId(ref.stdout()))).imageId;
}

/** `<prefix>-<tag>-<random>`: the tag of the process that made a staging dir. */
function tagOf(stagingDir: string): string {
  return /-([0-9a-f]{12})-[0-9a-f]{12}$/.exec(stagingDir)![1]!;
}

test('a worker killed with SIGKILL during a RUN: another finishes the build, earlier steps are not rerun, nothing of the dead worker is left', async () => {
  const home = process.env.STRATA_HOME!;
  const queue = `crash-${randomBytes(4).toString('hex')}`;
  const marker = `crash-me-${randomBytes(4).toString('hex')}`;
  const ctx = await dockerfileContext(marker);
  const workers: ChildProcess[] = [];
  try {
    const doomed = await startWorker({ STRATA_TASK_QUEUE: queue });
    workers.push(doomed.child);
    const build = startBuild(ctx, { STRATA_TASK_QUEUE: queue });
    await until('the RUN to start', async () => (build.stdout().includes(`started ${marker}`) ? true : undefined));
    const container = await until('the runc container', () => findContainer(marker));
    const staging = path.dirname(container.bundle);
    const deadTag = tagOf(staging);
    // The RUN is the doomed worker's: its owner record names that process.
    const owner = JSON.parse(await fs.readFile(path.join(home, 'owners', `${deadTag}.json`), 'utf8')) as { pid: number };
    expect(owner.pid).toBe(doomed.child.pid);
    expect(await mountPoints()).toContain(container.rootfs);
    // The step's network: slirp4netns on a namespace bind-mounted in the staging dir.
    const slirpOf = async () => (await commandLines()).filter((c) => c.startsWith('slirp4netns') && c.includes(staging));
    expect(await slirpOf()).toHaveLength(1);
    expect((await mountPoints()).filter((m) => m.startsWith(staging) && m.endsWith('/netns'))).toHaveLength(1);

    await killHard(doomed.child);
    // What a kill in the middle of writing a blob leaves: a partial temp file beside the
    // blobs and one in tmp/. And a live process's temp file, which must survive.
    const blobs = path.join(home, 'blobs', 'sha256');
    const partial = [path.join(blobs, `.tmp-${deadTag}-${randomBytes(6).toString('hex')}`), path.join(home, 'tmp', `blob-${deadTag}-${randomBytes(6).toString('hex')}`)];
    for (const p of partial) await fs.writeFile(p, 'half a blob');
    const liveTag = await until('a live owner record', async () => {
      for (const name of await fs.readdir(path.join(home, 'owners'))) {
        const rec = JSON.parse(await fs.readFile(path.join(home, 'owners', name), 'utf8')) as { pid: number };
        if (
          rec.pid !== doomed.child.pid &&
          (await fs.stat(`/proc/${rec.pid}`).then(
            () => true,
            () => false,
          ))
        )
          return name.slice(0, 12);
      }
      return undefined;
    });
    const livePartial = path.join(blobs, `.tmp-${liveTag}-${randomBytes(6).toString('hex')}`);
    await fs.writeFile(livePartial, 'being written');

    const successor = await startWorker({ STRATA_TASK_QUEUE: queue });
    workers.push(successor.child);
    // The successor reclaims at start: the dead worker's container, mount and files are gone.
    expect((await runcContainers()).map((c) => c.id)).not.toContain(container.id);
    expect(await mountPoints()).not.toContain(container.rootfs);
    expect((await mountPoints()).filter((m) => m.startsWith(staging))).toEqual([]);
    expect(await slirpOf()).toEqual([]);
    await expect(fs.stat(staging)).rejects.toMatchObject({ code: 'ENOENT' });
    for (const p of partial) await expect(fs.stat(p)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.stat(path.join(home, 'owners', `${deadTag}.json`))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.readFile(livePartial, 'utf8')).resolves.toBe('being written');
    await fs.rm(livePartial);

    // The client followed the build across the worker's death.
    const r = await build.cli;
    expect(r.exitCode).toBe(0);
    expect(build.stdout()).toMatch(/Successfully built [0-9a-f]{12}/);
    const workflowId = buildId(build.stdout());
    const { imageId } = await result(process.env.STRATA_TEMPORAL_PORT!, workflowId);

    // RUN one finished before the kill: started once. The killed RUN: again (on the shared
    // queue: it ran on its worker's own, workflows/sticky.ts). The last: once.
    const starts = await stepStarts(workflowId);
    expect([2, 3, 4].map((n) => starts.get(n))).toEqual([1, 2, 1]);

    expect(await findContainer(marker)).toBeUndefined();
    const stagingLeft = (await fs.readdir(path.join(home, 'tmp'))).filter((n) => n.includes(deadTag));
    expect(stagingLeft).toEqual([]);
    expect((await mountPoints()).filter((m) => m.includes(deadTag))).toEqual([]);
    expect((await fs.readdir(blobs)).filter((n) => n.includes(deadTag))).toEqual([]);

    expect(imageId).toBe(await uninterruptedImageId(ctx));
  } finally {
    for (const w of workers) await killHard(w);
    await fs.rm(ctx, { recursive: true, force: true });
  }
});

async function freePort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const free = (p: number) =>
      new Promise<boolean>((resolve) => {
        const srv = net.createServer();
        srv.once('error', () => resolve(false));
        srv.listen(p, '127.0.0.1', () => srv.close(() => resolve(true)));
      });
    if ((await free(port)) && (await free(port + 1000))) return port;
  }
}

/** A Temporal dev server of this test's own, on its own SQLite file. */
function startDevServer(port: number, db: string): ChildProcess {
  return spawn(
    findTemporalCli(),
    ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(port + 1000), '--db-filename', db, '--log-level', 'error'],
    { stdio: 'ignore' },
  );
}

async function serverReady(port: number): Promise<void> {
  await until('the Temporal server', async () => {
    const connection = await Connection.connect({ address: `127.0.0.1:${port}`, connectTimeout: 1000 }).catch(() => undefined);
    if (!connection) return undefined;
    try {
      await connection.workflowService.describeNamespace({ namespace: 'default' });
      return true;
    } catch {
      return undefined;
    } finally {
      await connection.close();
    }
  });
}

test('the Temporal server killed and restarted on its database during a RUN: the build completes with the same image ID', async () => {
  const marker = `server-crash-${randomBytes(4).toString('hex')}`;
  const ctx = await dockerfileContext(marker);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-temporal-'));
  const port = await freePort();
  const db = path.join(dir, 'temporal.db');
  const env = { STRATA_TEMPORAL_PORT: String(port), STRATA_TASK_QUEUE: `server-crash-${randomBytes(4).toString('hex')}` };
  let server = startDevServer(port, db);
  const children: ChildProcess[] = [server];
  try {
    await serverReady(port);
    const worker = await startWorker(env);
    children.push(worker.child);
    const build = startBuild(ctx, env);
    await until('the RUN to start', async () => (build.stdout().includes(`started ${marker}`) ? true : undefined));
    expect(build.cli.exitCode).toBeNull();

    await killHard(server);
    server = startDevServer(port, db);
    children.push(server);
    await serverReady(port);

    const r = await build.cli;
    if (r.exitCode !== 0) throw new Error(`strata build exited ${r.exitCode}\n${build.stdout()}\n${String(r.stderr)}\nworker:\n${worker.log()}`);
    const workflowId = buildId(build.stdout());
    const { imageId } = await result(String(port), workflowId);
    expect(imageId).toBe(await uninterruptedImageId(ctx));
  } finally {
    for (const c of children.reverse()) await killHard(c);
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rm(ctx, { recursive: true, force: true });
  }
});
