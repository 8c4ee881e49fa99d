// `strata build` through the store's background worker's socket (client/workerLink.ts): the
// worker starts and follows the build, and the CLI shows exactly what it shows through
// Temporal's client (STRATA_WORKER_SOCKET=0) — output, -q, exit codes, a waiting build,
// Ctrl-C — while the socket refuses hostile requests and goes on serving.
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { execa } from 'execa';
import { STRATA_BIN, strata, strataOk, type RunResult } from '../helpers/cli.js';
import { until } from '../helpers/host.js';

let home: string;
let ctx: string;
const queue = `sock-${process.pid}`;
const env = (more: Record<string, string> = {}) => ({ STRATA_HOME: home, STRATA_TASK_QUEUE: queue, ...more });
/** Through the worker's socket; the `start via worker` timing line says the build went that way. */
const viaSocket = { STRATA_TIMING: '1' };
const viaTemporal = { STRATA_TIMING: '1', STRATA_WORKER_SOCKET: '0' };

beforeAll(async () => {
  home = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-sock-home-'));
  ctx = await fs.mkdtemp(path.join(os.tmpdir(), 'strata-sock-ctx-'));
  await fs.writeFile(path.join(ctx, 'f'), 'hello\n');
  await strataOk(['import', '--change', 'CMD ["sh"]', process.env.STRATA_TEST_BUSYBOX_TAR!, 'busybox:latest'], { env: env() });
  await strataOk(['worker', 'start'], { env: env() });
});

afterAll(async () => {
  await strata(['worker', 'stop', '--all'], { env: env() });
  await fs.rm(ctx, { recursive: true, force: true });
  await fs.rm(home, { recursive: true, force: true });
});

async function dockerfile(text: string): Promise<void> {
  await fs.writeFile(path.join(ctx, 'Dockerfile'), text);
}

async function build(args: string[], how: Record<string, string>): Promise<RunResult> {
  const r = await strata(['build', ...args, ctx], { env: env(how) });
  // Each path is the one asked for: the other would make the comparisons below vacuous.
  if (how.STRATA_WORKER_SOCKET === '0') expect(r.stderr).not.toMatch(/^timing: start via worker/m);
  else expect(r.stderr).toMatch(/^timing: start via worker/m);
  return r;
}

/** What a user reads, without what differs from build to build (IDs, times, timings). */
function shown(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('timing:'))
    .join('\n')
    .replace(/build-[0-9a-f]{12}/g, 'build-ID')
    .replace(/\b[0-9a-f]{12}\b/g, 'HEX')
    .replace(/sha256:[0-9a-f]{64}/g, 'sha256:HEX')
    .replace(/\(\d+\.\ds\)/g, '(T)')
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, 'TIME');
}

async function socketPath(): Promise<string> {
  const dir = path.join(home, 'run');
  const [name, ...more] = (await fs.readdir(dir)).filter((n) => n.endsWith('.sock'));
  expect(more).toEqual([]);
  return path.join(dir, name!);
}

/** Sends `line` raw on the worker's socket; its answer line, parsed. */
async function ask(line: string | Buffer): Promise<{ ok?: unknown; error?: string }> {
  const sock = net.connect(await socketPath());
  let answer = '';
  sock.on('data', (c: Buffer) => (answer += c.toString()));
  sock.on('error', () => undefined); // an oversized request is cut off while it is still written
  await new Promise((r) => sock.once('connect', r));
  sock.write(line);
  await new Promise((r) => sock.once('close', r));
  return JSON.parse(answer.split('\n')[0]!) as { ok?: unknown; error?: string };
}

async function workerPids(): Promise<number[]> {
  const r = await strataOk(['worker', 'status'], { env: env() });
  return [...r.stdout.matchAll(/^pid (\d+): .*\(background/gm)].map((m) => Number(m[1]));
}

test('a successful build shows the same through the worker as through Temporal, and -q and --iidfile work alike', async () => {
  await dockerfile('FROM busybox\nRUN echo built-here && echo second line\nCOPY f /f\n');
  const a = await build(['--no-cache', '-t', `sock-${process.pid}`], viaSocket);
  const b = await build(['--no-cache', '-t', `sock-${process.pid}`], viaTemporal);
  expect(a.exitCode).toBe(0);
  expect(a.stdout).toContain('built-here\nsecond line\n');
  expect(a.stdout).toContain(`Successfully tagged sock-${process.pid}:latest`);
  expect(shown(a.stdout)).toBe(shown(b.stdout));
  expect(shown(a.stderr)).toBe(shown(b.stderr));

  const iid = path.join(ctx, '..', `${path.basename(ctx)}.iid`);
  const q = await build(['-q', '--iidfile', iid], viaSocket);
  expect(q.exitCode).toBe(0);
  expect(q.stdout).toMatch(/^sha256:[0-9a-f]{64}$/);
  expect(await fs.readFile(iid, 'utf8')).toBe(q.stdout);
  await fs.rm(iid);
});

test('a failing RUN: the same error naming the step and exit code, failing at once or waiting for a retry', async () => {
  await dockerfile('FROM busybox\nRUN echo about to fail && exit 3\n');
  const a = await build([], viaSocket);
  const b = await build([], viaTemporal);
  expect(a.exitCode).toBe(1);
  expect(a.stderr).toMatch(/error: .*RUN echo about to fail && exit 3.*(line 2|exit code 3)|error: .*(line 2|exit code 3)/);
  expect(shown(a.stdout)).toBe(shown(b.stdout));
  expect(shown(a.stderr)).toBe(shown(b.stderr));

  const w = await build(['--retry-window', '1h'], viaSocket);
  const v = await build(['--retry-window', '1h'], viaTemporal);
  expect(w.exitCode).toBe(2);
  expect(w.stderr).toContain('The build is waiting for a decision until');
  expect(shown(w.stderr)).toBe(shown(v.stderr));
  for (const r of [w, v]) await strataOk(['abort', /Build ID: (\S+)/.exec(r.stdout)![1]!], { env: env() });
});

test('Ctrl-C through the worker cancels the build', async () => {
  await dockerfile('FROM busybox\nRUN echo started-sock && sleep 60\nRUN echo never\n');
  const cli = execa('node', [STRATA_BIN, 'build', ctx], { reject: false, env: { ...process.env, ...env(viaSocket) } });
  let stdout = '';
  cli.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  await until('the step to print', async () => (stdout.includes('started-sock') ? true : undefined));
  cli.kill('SIGINT');
  const r = await cli;
  expect(r.stderr).toMatch(/^timing: start via worker/m);
  expect(r.exitCode).toBe(130);
  expect(r.stderr).toContain('Build cancelled');
  expect(stdout).not.toContain('never');
  const connection = await Connection.connect({ address: `127.0.0.1:${process.env.STRATA_TEMPORAL_PORT}` });
  try {
    const d = await new Client({ connection }).workflow.getHandle(/Build ID: (\S+)/.exec(stdout)![1]!).describe();
    expect(d.status.name).toBe('CANCELLED');
  } finally {
    await connection.close();
  }
});

test('the socket refuses hostile requests with an error and goes on serving builds', async () => {
  const [pid] = await workerPids();
  const start = {
    op: 'start',
    workflowId: 'build-0123456789ab',
    request: { contextDigest: `sha256:${'a'.repeat(64)}`, dockerfileDigest: `sha256:${'b'.repeat(64)}`, dockerfileName: 'Dockerfile', buildArgs: {}, tags: [], outputs: [] },
    summary: 's',
    details: 'd',
    memo: {},
  };
  const refused = async (line: string | Buffer, why: RegExp) => {
    const a = await ask(line);
    expect(a.ok).toBeUndefined();
    expect(a.error).toMatch(why);
  };
  await refused('{"op": "start", \n', /not JSON/);
  await refused('[1,2]\n', /not an object/);
  await refused(Buffer.alloc(2 << 20, 0x61), /longer than 1048576 bytes/);
  await refused(JSON.stringify({ op: 'exec', workflowId: 'build-0123456789ab' }) + '\n', /op: not one of/);
  // Paths outside the store: an output to write, a workflow ID and digests made of path parts.
  await refused(JSON.stringify({ ...start, request: { ...start.request, outputs: [{ type: 'docker', dest: '/etc/strata-was-here' }] } }) + '\n', /outputs/);
  await refused(JSON.stringify({ ...start, workflowId: 'build-../../../etc' }) + '\n', /workflowId/);
  await refused(JSON.stringify({ op: 'cancel', workflowId: 'some-schedule' }) + '\n', /workflowId/);
  await refused(JSON.stringify({ ...start, request: { ...start.request, contextDigest: 'sha256:../../../etc/passwd' } }) + '\n', /contextDigest/);
  await refused(JSON.stringify({ ...start, request: { ...start.request, storeId: 'ffffffffffffffff' } }) + '\n', /storeId/);
  await refused(JSON.stringify({ ...start, memo: { big: 'x'.repeat(100_000) } }) + '\n', /memo/);
  await expect(fs.stat('/etc/strata-was-here')).rejects.toMatchObject({ code: 'ENOENT' });

  await dockerfile('FROM busybox\nRUN echo still-serving\n');
  const r = await build([], viaSocket);
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toContain('still-serving');
  expect(await workerPids()).toEqual([pid]);
});

test('the background worker stopped mid-build: the CLI follows on through Temporal and the build ends as it would have', async () => {
  await dockerfile('FROM busybox\nRUN echo started-long && sleep 6 && echo ended-long\nRUN echo after-long\n');
  const cli = execa('node', [STRATA_BIN, 'build', '--no-cache', ctx], { reject: false, env: { ...process.env, ...env(viaSocket) } });
  let stdout = '';
  cli.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  await until('the step to print', async () => (stdout.includes('started-long') ? true : undefined));
  const [pid] = await workerPids();
  await strataOk(['worker', 'stop'], { env: env() });
  const r = await cli;
  expect(r.stderr).toMatch(/^timing: start via worker/m);
  expect(r.exitCode).toBe(0);
  expect(stdout).toContain('after-long');
  expect(stdout).toMatch(/Successfully built [0-9a-f]{12}/);
  // The CLI started the background worker again to go on.
  const [fresh] = await workerPids();
  expect(fresh).toBeDefined();
  expect(fresh).not.toBe(pid);
});
