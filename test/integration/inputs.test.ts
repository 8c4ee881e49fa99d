// An attacker on Temporal's network, through the real dev server and the shared test worker:
// a Temporal client that starts buildImage with inputs of its choosing, and a worker of its
// own whose workflow schedules strata's activities directly on strata's task queue. Every
// refused input fails at once with what was refused and why, and nothing is written outside
// the worker's output directory. What a user does with the CLI still works.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ActivityFailure, ApplicationFailure, Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { makeFilter, packContext } from '../../engine/context/pack.js';
import { sha256, type Digest } from '../../engine/digest.js';
import { Store } from '../../engine/store/store.js';
import type { BuildRequest } from '../../workflows/types.js';
import { strata } from '../helpers/cli.js';

const QUEUE = process.env.STRATA_TASK_QUEUE!;
const OUT = process.env.STRATA_OUTPUT_DIR!;

let connection: Connection;
let client: Client;
let store: Store;
let attacker: ChildProcess;
let attackerQueue: string;
/** A directory outside the output directory: nothing may ever appear in it. */
let outside: string;
let base: BuildRequest;
let busyboxManifest: Digest;

beforeAll(async () => {
  connection = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
  client = new Client({ connection });
  store = await Store.open(process.env.STRATA_HOME);
  outside = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-outside-'));
  // Content that is in the store already, as a past build would have left it.
  const ctxDir = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-inputs-ctx-'));
  await fs.writeFile(path.join(ctxDir, 'f'), 'data\n');
  const context = await store.putBlobStream(packContext(ctxDir, makeFilter([])));
  await fs.rm(ctxDir, { recursive: true });
  const dockerfile = await store.putBlob('FROM busybox\nCOPY f /f\n');
  base = { contextDigest: context.digest, dockerfileDigest: dockerfile.digest, dockerfileName: 'Dockerfile', buildArgs: {}, tags: [], outputs: [], retryWindowMs: 0 };
  busyboxManifest = (await store.getImage('busybox:latest')).manifestDigest;

  attackerQueue = `attacker-${randomBytes(4).toString('hex')}`;
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'attacker', 'worker.js');
  attacker = spawn('node', [script, attackerQueue], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    attacker.stdout!.on('data', (c: Buffer) => c.toString().includes('attacker polling') && resolve());
    attacker.once('exit', (code) => reject(new Error(`the attacker's worker exited ${code}`)));
  });
});

afterAll(async () => {
  if (attacker && attacker.exitCode === null) {
    const exited = new Promise((r) => attacker.once('exit', r));
    attacker.kill('SIGTERM');
    await exited;
  }
  await connection?.close();
  await fs.rm(outside, { recursive: true, force: true });
});

interface Refusal {
  message: string;
  type?: string | null;
  nonRetryable?: boolean | null;
}

/** The innermost failure of a failed workflow. */
function innermost(err: unknown): Refusal {
  let e: unknown = err instanceof WorkflowFailedError ? err.cause : err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  if (e instanceof ApplicationFailure) return { message: e.message, type: e.type, nonRetryable: e.nonRetryable };
  return { message: (e as Error).message };
}

/** Starts buildImage as an attacker's client would; resolves to how it failed (or its result). */
async function build(overrides: Partial<BuildRequest> & Record<string, unknown>): Promise<Refusal | { result: unknown }> {
  const handle = await client.workflow.start('buildImage', {
    taskQueue: QUEUE,
    workflowId: `attack-${randomBytes(6).toString('hex')}`,
    args: [{ ...base, ...overrides }],
  });
  try {
    return { result: await handle.result() };
  } catch (err) {
    return innermost(err);
  }
}

/** Runs strata's activity `name` with `input`, scheduled by the attacker's own workflow. */
async function activity(name: string, input: unknown): Promise<Refusal | { result: unknown }> {
  const handle = await client.workflow.start('callActivity', {
    taskQueue: attackerQueue,
    workflowId: `attack-activity-${randomBytes(6).toString('hex')}`,
    args: [QUEUE, name, input],
    workflowExecutionTimeout: '3 minutes',
  });
  try {
    return { result: await handle.result() };
  } catch (err) {
    return innermost(err);
  }
}

async function absent(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => false,
    () => true,
  );
}

const refused = (type: string, message: string | RegExp) => ({
  type,
  nonRetryable: true,
  message: typeof message === 'string' ? expect.stringContaining(message) : expect.stringMatching(message),
});

describe('buildImage started by a Temporal client', () => {
  test('an output outside the output directory (absolute) is refused, and nothing is written', async () => {
    const dest = path.join(outside, 'abs.tar');
    expect(await build({ outputs: [{ type: 'docker', dest }] })).toEqual(refused('OUTPUT_REFUSED', "is not inside the worker's output directory"));
    expect(await absent(dest)).toBe(true);
  });

  test('an output with a `..` component is refused', async () => {
    const parent = path.dirname(OUT);
    expect(await build({ outputs: [{ type: 'docker', dest: `${OUT}/../dotdot.tar` }] })).toEqual(refused('OUTPUT_REFUSED', 'a `..` or `.` component is not allowed'));
    expect(await build({ outputs: [{ type: 'docker', dest: '../dotdot2.tar' }] })).toEqual(refused('OUTPUT_REFUSED', 'a `..` or `.` component is not allowed'));
    expect(await absent(path.join(parent, 'dotdot.tar'))).toBe(true);
    expect(await absent(path.join(parent, 'dotdot2.tar'))).toBe(true);
  });

  test('an output through a symlink that leads out (a directory, or the file itself) is refused', async () => {
    const link = `escape-${randomBytes(3).toString('hex')}`;
    await fs.symlink(outside, path.join(OUT, link));
    expect(await build({ outputs: [{ type: 'docker', dest: `${OUT}/${link}/sym.tar` }] })).toEqual(refused('OUTPUT_REFUSED', `${link} is a symbolic link`));
    expect(await absent(path.join(outside, 'sym.tar'))).toBe(true);

    const fileLink = `victim-${randomBytes(3).toString('hex')}.tar`;
    await fs.symlink(path.join(outside, 'victim.tar'), path.join(OUT, fileLink));
    expect(await build({ outputs: [{ type: 'docker', dest: fileLink }] })).toEqual(refused('OUTPUT_REFUSED', `${fileLink} is a symbolic link`));
    expect(await absent(path.join(outside, 'victim.tar'))).toBe(true);
  });

  test('an output inside the output directory is written by the worker', async () => {
    const name = `inside-${randomBytes(3).toString('hex')}.tar`;
    const r = await build({ outputs: [{ type: 'docker', dest: name }] });
    expect(r).toMatchObject({ result: { outputs: [path.join(OUT, name)] } });
    expect((await fs.stat(path.join(OUT, name))).size).toBeGreaterThan(1024);
  });

  test('a tag that is not a reference is refused at the commit, and the store has no such tag', async () => {
    expect(await build({ tags: ['Evil Tag!'] })).toEqual(refused('INPUT_REFUSED', 'refuse tags[0]:'));
    expect((await store.listTags()).map((t) => t.name)).not.toContain('Evil Tag!');
  });

  test('push without the worker allowing it is refused', async () => {
    expect(await build({ tags: ['127.0.0.1:1/pushed:1'], push: true })).toEqual(refused('INPUT_REFUSED', 'refuse push: this worker does not push with its credentials'));
  });

  test('a malformed digest is refused by the workflow before anything runs', async () => {
    expect(await build({ contextDigest: 'sha256:1234' as Digest })).toEqual(refused('INPUT_REFUSED', 'refuse contextDigest: not sha256:<64 hex digits>'));
  });

  test('a digest that is not in the store is refused by the activity', async () => {
    const missing = sha256(`nothing ${Math.random()}`);
    expect(await build({ dockerfileDigest: missing })).toEqual(refused('INPUT_REFUSED', `refuse dockerfileDigest: ${missing} is not in this worker's store`));
    // The context is first read by the COPY step: the build fails there, naming it.
    expect(await build({ contextDigest: missing })).toEqual(refused('StepFailed', `Step 2/2 : COPY f /f (line 2): refuse contextDigest: ${missing} is not in this worker's store`));
  });

  test('numbers the workflow cannot use fail the build instead of hanging it', async () => {
    expect(await build({ retryWindowMs: -5 })).toEqual(refused('INPUT_REFUSED', 'refuse retryWindowMs'));
    expect(await build({ stepTimeoutMs: 1e20 })).toEqual(refused('INPUT_REFUSED', 'refuse stepTimeoutMs'));
    expect(await build({ tags: Array.from({ length: 500 }, (_, i) => `t:${i}`) })).toEqual(refused('INPUT_REFUSED', 'refuse tags'));
  });

  test("a retry signal's context digest that is not in the store is refused by the step", async () => {
    const failing = await store.putBlob('FROM busybox\nCOPY missing /\n');
    const handle = await client.workflow.start('buildImage', {
      taskQueue: QUEUE,
      workflowId: `attack-retry-${randomBytes(6).toString('hex')}`,
      args: [{ ...base, dockerfileDigest: failing.digest, retryWindowMs: 120_000 }],
    });
    const waiting = async () => await handle.query<{ phase: string; retries?: number; steps: { error?: string }[] }>('progress');
    for (let i = 0; i < 100 && (await waiting()).phase !== 'waiting'; i++) await new Promise((r) => setTimeout(r, 200));
    await handle.signal('retry', { contextDigest: sha256('a context nobody packed') });
    let p = await waiting();
    for (let i = 0; i < 100 && !((p.retries ?? 0) >= 1 && p.phase === 'waiting'); i++) {
      await new Promise((r) => setTimeout(r, 200));
      p = await waiting();
    }
    expect(p.steps.map((s) => s.error).join('\n')).toContain('refuse contextDigest: sha256:');
    await handle.signal('abort');
    await expect(handle.result()).rejects.toThrow();
  });
});

describe("strata's activities scheduled by an attacker's own workflow", () => {
  test('saveImage to a path outside the output directory', async () => {
    const dest = path.join(outside, 'direct.tar');
    expect(await activity('saveImage', { manifestDigest: busyboxManifest, tags: [], dest })).toEqual(refused('OUTPUT_REFUSED', 'is not inside'));
    expect(await absent(dest)).toBe(true);
  });

  test('runStep with a heredoc file whose name climbs out of its mount directory', async () => {
    const evil = path.join(outside, 'planted');
    const step = {
      kind: 'run',
      number: 2,
      line: 2,
      text: 'RUN x',
      args: ['/bin/true'],
      env: [],
      workdir: '/',
      mounts: [{ type: 'inline', target: '/dev/pipes', files: [{ name: `../../../../../../../../..${evil}`, content: 'x', mode: 0o755 }] }],
      history: { created_by: 'RUN x' },
    };
    expect(await activity('runStep', { step, network: 'none' })).toEqual(refused('INPUT_REFUSED', 'refuse step.mounts[0].files[0].name'));
    expect(await absent(evil)).toBe(true);
  });

  test('commitImage with a layer the store does not have, or a tag that is no reference', async () => {
    const state = {
      config: {},
      architecture: 'amd64',
      os: 'linux',
      history: [],
      layers: [{ chainId: sha256('x'), diffId: sha256('x'), digest: sha256('x'), size: 1, blobSize: 1, mediaType: 'x' }],
    };
    expect(await activity('commitImage', { state, tags: [] })).toEqual(refused('INPUT_REFUSED', 'refuse state.layers[0].chainId: layer sha256:'));
    expect(await activity('commitImage', { state: { ...state, layers: [] }, tags: ['a b'] })).toEqual(refused('INPUT_REFUSED', 'refuse tags[0]'));
  });

  test("commitImage naming a stored blob that is not the layer's (another build's context) as a layer's blob", async () => {
    const busybox = await store.getImage('busybox:latest');
    const chainId = busybox.layers[0]!.chainId;
    const meta = await store.readLayerMeta(chainId);
    const context = base.contextDigest as Digest;
    const layer = {
      chainId,
      diffId: meta.diffId,
      digest: context,
      size: meta.size,
      blobSize: (await fs.stat(store.blobPath(context))).size,
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    };
    const state = { config: {}, architecture: 'amd64', os: 'linux', history: [], layers: [layer] };
    expect(await activity('commitImage', { state, tags: [] })).toEqual(refused('INPUT_REFUSED', 'refuse state.layers[0].digest'));
  });

  test('pushImage on a worker that does not allow pushes', async () => {
    expect(await activity('pushImage', { manifestDigest: busyboxManifest, reference: '127.0.0.1:1/x:1' })).toEqual(refused('INPUT_REFUSED', 'refuse push'));
  });

  test('planBuild with a malformed digest, copyStep on a layer the store does not have', async () => {
    expect(await activity('planBuild', { dockerfileDigest: '../../etc/passwd', dockerfileName: 'x', buildArgs: {} })).toEqual(refused('INPUT_REFUSED', 'refuse dockerfileDigest'));
    const copy = { kind: 'copy', number: 2, line: 2, text: 'COPY f /', instruction: 'COPY', sources: ['f'], dest: '/', history: { created_by: 'COPY' } };
    expect(await activity('copyStep', { parentTop: sha256('no layer'), step: copy, contextDigest: base.contextDigest })).toEqual(
      refused('INPUT_REFUSED', 'refuse parentTop: layer'),
    );
  });

  test("schedule activities: a directory outside the worker's source directory, a schedule ID that climbs", async () => {
    expect(await activity('resolveScheduleSource', { kind: 'dir', dir: '/etc' })).toEqual(refused('INPUT_REFUSED', "is not inside the worker's source directory"));
    expect(await activity('lastScheduledBuild', '../../index')).toEqual(refused('INPUT_REFUSED', 'refuse scheduleId'));
  });
});

describe('the CLI', () => {
  test('build --detach --output: the worker writes inside its output directory, and refuses outside', async () => {
    const ctx = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-inputs-cli-'));
    try {
      await fs.writeFile(path.join(ctx, 'Dockerfile'), 'FROM busybox\nCMD ["true"]\n');
      const name = `detached-${randomBytes(3).toString('hex')}.tar`;
      const ok = await strata(['build', '--detach', '--output', `type=docker,dest=${path.join(OUT, name)}`, ctx]);
      const id = /Build ID: (\S+)/.exec(ok.stdout)![1]!;
      const attached = await strata(['attach', id]);
      expect(attached.exitCode).toBe(0);
      expect(attached.stdout).toContain(`Saved image to ${path.join(OUT, name)}`);

      const bad = await strata(['build', '--detach', '--output', `type=docker,dest=${path.join(outside, 'cli.tar')}`, ctx]);
      const badId = /Build ID: (\S+)/.exec(bad.stdout)![1]!;
      const failed = await strata(['attach', badId]);
      expect(failed.exitCode).toBe(1);
      expect(failed.stderr).toContain("is not inside the worker's output directory");
      expect(await absent(path.join(outside, 'cli.tar'))).toBe(true);
    } finally {
      await fs.rm(ctx, { recursive: true, force: true });
    }
  });
});
