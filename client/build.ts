// `strata build`: pack the context into the store, start buildImage, follow its progress.
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import proto from '@temporalio/proto'; // CommonJS: no named exports under ESM
import { normalizeReference } from '../engine/image/reference.js';
import { registryReference } from '../engine/registry/reference.js';
import { stepLogPath } from '../engine/store/logs.js';
import { removeBuildSecrets, writeBuildSecret } from '../engine/store/secrets.js';
import type { Store } from '../engine/store/store.js';
import { connectionOptions, ensureTemporal, type TemporalTarget } from '../worker/temporal.js';
import { createWorker, taskQueue } from '../worker/worker.js';
import type { buildImage } from '../workflows/buildImage.js';
import type { BuildProgress, BuildRequest, OutputSpec, RunHeartbeat } from '../workflows/types.js';
import { RUN_HEARTBEAT_MS } from '../workflows/types.js';
import { makeFilter, packContext, readDockerignore } from './context.js';
import { deliverBuild, recordDelivery } from './deliver.js';
import { ProgressPrinter, formatSize } from './progress.js';
import { printPushResult } from './push.js';

export interface BuildOptions {
  file?: string;
  tag: string[];
  buildArg: string[];
  target?: string;
  output?: string;
  network?: string;
  stepTimeout?: string;
  secret?: string[];
  /** How long a failed step waits for `strata retry`/`abort`: a duration, or 0 to fail at once. */
  retryWindow?: string;
  /** Print the build ID and return instead of following the build. */
  detach?: boolean;
  /** Push each tag after the build. */
  push?: boolean;
}

/** `strata build --retry-window` when neither the flag nor STRATA_RETRY_WINDOW says otherwise. */
export const DEFAULT_RETRY_WINDOW = '24h';

/** A retry window: a duration, or 0 (fail at once). */
export function parseRetryWindow(s: string): number {
  return /^0+[hms]?$/.test(s.trim()) ? 0 : parseDuration(s);
}

/** Exit status of a client that leaves a build waiting for `strata retry` or `strata abort`. */
export const EXIT_WAITING = 2;

/** `90`, `90s`, `5m`, `1h30m` → milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(s.trim());
  if (!m || s.trim() === '') throw new UsageError(`invalid duration ${JSON.stringify(s)} (use e.g. 90s, 5m, 1h)`);
  const [, h = '0', min = '0', sec = '0'] = m;
  const ms = ((Number(h) * 60 + Number(min)) * 60 + Number(sec)) * 1000;
  if (ms <= 0) throw new UsageError(`invalid duration ${JSON.stringify(s)}: must be positive`);
  return ms;
}

export class UsageError extends Error {}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `K=V` sets; a bare `K` takes the value from the environment, or is skipped (docker). */
export function parseBuildArgs(items: string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    if (i === 0) throw new UsageError(`--build-arg: invalid argument ${JSON.stringify(item)}`);
    if (i > 0) out[item.slice(0, i)] = item.slice(i + 1);
    else if (env[item] !== undefined) out[item] = env[item]!;
  }
  return out;
}

/** `type=docker,dest=FILE` (docker buildx's syntax; `type=tar` is not offered yet). */
export function parseOutput(spec: string, cwd = process.cwd()): OutputSpec {
  const fields = new Map<string, string>();
  for (const part of spec.split(',')) {
    const i = part.indexOf('=');
    if (i <= 0) throw new UsageError(`--output: expected key=value, got ${JSON.stringify(part)}`);
    fields.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  const type = fields.get('type') ?? 'docker';
  if (type !== 'docker') throw new UsageError(`--output: type ${JSON.stringify(type)} is not supported (use type=docker)`);
  const dest = fields.get('dest');
  if (!dest) throw new UsageError('--output: dest=FILE is required');
  for (const k of fields.keys()) if (k !== 'type' && k !== 'dest') throw new UsageError(`--output: unknown key ${JSON.stringify(k)}`);
  return { type: 'docker', dest: path.resolve(cwd, dest) };
}

export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`SOURCE_DATE_EPOCH must be a whole number of seconds, got ${JSON.stringify(v)}`);
  return Number(v);
}

/**
 * `--secret id=X,src=FILE` or `id=X,env=VAR` (docker buildx's syntax; `type=file|env` and
 * `source=` are accepted too). A bare `id=X` reads the variable X. Values are read here, so a
 * missing file fails before the build starts.
 */
export async function readSecrets(items: string[], env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const item of items) {
    const fields = new Map<string, string>();
    for (const part of item.split(',')) {
      const i = part.indexOf('=');
      if (i <= 0) throw new UsageError(`--secret: expected key=value, got ${JSON.stringify(part)}`);
      const key = part.slice(0, i).trim();
      fields.set(key === 'source' ? 'src' : key, part.slice(i + 1));
    }
    for (const k of fields.keys()) if (!['id', 'src', 'env', 'type'].includes(k)) throw new UsageError(`--secret: unknown key ${JSON.stringify(k)}`);
    const id = fields.get('id');
    if (!id) throw new UsageError(`--secret ${item}: id= is required`);
    const type = fields.get('type') ?? (fields.has('src') ? 'file' : 'env');
    if (type === 'file') {
      const src = fields.get('src');
      if (!src) throw new UsageError(`--secret ${item}: src=FILE is required with type=file`);
      out.set(id, await fs.readFile(path.resolve(cwd, src)).catch((e: NodeJS.ErrnoException) => {
        throw new UsageError(`--secret ${id}: cannot read ${src}: ${e.code ?? e.message}`);
      }));
    } else if (type === 'env') {
      const name = fields.get('env') ?? id;
      const value = env[name];
      if (value === undefined) throw new UsageError(`--secret ${id}: environment variable ${name} is not set`);
      out.set(id, Buffer.from(value));
    } else {
      throw new UsageError(`--secret ${id}: type must be file or env, got ${JSON.stringify(type)}`);
    }
  }
  return out;
}

/** `--push` pushes the tags: without one there is nowhere to push, and a bad name fails now. */
export function checkPushTags(tags: string[], command: string): void {
  if (tags.length === 0) throw new UsageError(`${command}: --push needs a name to push to: -t REGISTRY/REPO:TAG`);
  for (const t of tags) {
    if (t.includes('@')) throw new UsageError(`${command}: --push: -t ${t} is a digest reference; give a tag`);
    registryReference(t);
  }
}

function parseNetwork(v: string | undefined): 'host' | 'none' | undefined {
  if (v === undefined || v === 'default') return undefined;
  if (v === 'host' || v === 'none') return v;
  throw new UsageError(`--network: expected default, host or none, got ${JSON.stringify(v)}`);
}

/** True when some worker polled the queue recently (a dead one stays listed for minutes). */
export async function hasLiveWorker(client: Client, namespace: string, queue: string): Promise<boolean> {
  const { TaskQueueType, TaskQueueKind } = proto.temporal.api.enums.v1;
  const recentMs = 70_000; // a live poller renews its long poll at least once a minute
  for (const taskQueueType of [TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY]) {
    const r = await client.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name: queue, kind: TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType,
    });
    const live = (r.pollers ?? []).some((p) => {
      const seconds = Number(p.lastAccessTime?.seconds ?? 0);
      return Date.now() - seconds * 1000 < recentMs;
    });
    if (!live) return false;
  }
  return true;
}

export async function runBuild(store: Store, contextArg: string, opts: BuildOptions): Promise<number> {
  const out = (line: string) => process.stdout.write(line + '\n');
  const err = (line: string) => process.stderr.write(line + '\n');

  const contextDir = path.resolve(contextArg);
  const st = await fs.stat(contextDir).catch(() => undefined);
  if (!st?.isDirectory()) throw new UsageError(`build: context ${contextArg} is not a directory`);
  // `-f -` reads the Dockerfile from stdin, as docker does; it is then named plain `Dockerfile`.
  const fromStdin = opts.file === '-';
  const dockerfilePath = fromStdin ? path.join(contextDir, 'Dockerfile') : opts.file ? path.resolve(opts.file) : path.join(contextDir, 'Dockerfile');
  const dockerfileText = fromStdin
    ? await readStdin()
    : await fs.readFile(dockerfilePath).catch((e: NodeJS.ErrnoException) => {
        throw new UsageError(`build: cannot read Dockerfile ${dockerfilePath}: ${e.code ?? e.message}`);
      });
  const tags = opts.tag.map((t) => {
    try {
      return normalizeReference(t);
    } catch (e) {
      throw new UsageError(`-t ${t}: ${(e as Error).message}`);
    }
  });
  const outputs = opts.output ? [parseOutput(opts.output)] : [];
  // A build this client follows is saved and pushed by the client (client/deliver.ts); a detached one asks its worker.
  const delivery = opts.detach ? undefined : { outputs: outputs.map((o) => o.dest), push: opts.push ? tags : [] };
  const request: Omit<BuildRequest, 'contextDigest' | 'dockerfileDigest'> = {
    dockerfileName: path.basename(dockerfilePath),
    buildArgs: parseBuildArgs(opts.buildArg),
    target: opts.target,
    tags,
    outputs: delivery ? [] : outputs,
    sourceDateEpoch: sourceDateEpoch(),
    network: parseNetwork(opts.network),
    stepTimeoutMs: opts.stepTimeout ? parseDuration(opts.stepTimeout) : undefined,
    retryWindowMs: parseRetryWindow(opts.retryWindow ?? (process.env.STRATA_RETRY_WINDOW || DEFAULT_RETRY_WINDOW)),
    ...(opts.push && !delivery ? { push: true } : {}),
  };
  if (opts.push) checkPushTags(tags, 'build');

  const secrets = await readSecrets(opts.secret ?? []);

  const filter = makeFilter(await readDockerignore(contextDir, opts.file && !fromStdin ? dockerfilePath : undefined));
  const context = await store.putBlobStream(packContext(contextDir, filter));
  const dockerfile = await store.putBlob(dockerfileText);
  out(`Sending build context to strata  ${formatSize(context.size)}`);

  const session = await openSession(store, err);
  const { client, target } = session;
  let secretsOf: string | undefined;
  let code = 1;
  try {
    const live = await hasLiveWorker(client, target.namespace, session.queue);
    if (!live && !opts.detach) await session.startLocalWorker();
    const workflowId = `build-${randomBytes(6).toString('hex')}`;
    secretsOf = workflowId;
    // Secrets reach the worker through the store, never through Temporal's history.
    for (const [id, value] of secrets) await writeBuildSecret(store.root, workflowId, id, value);
    if (delivery) await recordDelivery(store.root, workflowId, delivery);
    const handle = await client.workflow.start<typeof buildImage>('buildImage', {
      taskQueue: session.queue,
      workflowId,
      args: [{ ...request, contextDigest: context.digest, dockerfileDigest: dockerfile.digest }],
    });
    // The ID is what `strata logs` and the Web UI know the build by.
    out(`Build ID: ${workflowId}`);
    if (opts.detach) {
      if (!live) err(`No worker polls task queue "${session.queue}": the build starts when one does (strata worker, or strata attach ${workflowId}).`);
      secretsOf = undefined; // the build still needs them; the client that sees it end removes them
      return (code = 0);
    }
    return (code = await follow(store.root, client, handle, target, out, err, session.startLocalWorker));
  } finally {
    // A waiting build may still run a step that reads them.
    if (secretsOf && code !== EXIT_WAITING) await removeBuildSecrets(store.root, secretsOf);
    await session.close();
  }
}

export interface Session {
  client: Client;
  target: TemporalTarget;
  queue: string;
  /** Runs a worker in this process until close(), unless one already runs here. */
  startLocalWorker(): Promise<void>;
  close(): Promise<void>;
}

/** A client of the configured server, and a worker in this process on demand. */
export async function openSession(store: Store, err: (l: string) => void): Promise<Session> {
  const target = await ensureTemporal(store.root, err);
  const connection = await Connection.connect(connectionOptions(target));
  const client = new Client({ connection, namespace: target.namespace });
  const queue = taskQueue();
  let local: Awaited<ReturnType<typeof createWorker>> | undefined;
  let localRun: Promise<void> | undefined;
  return {
    client,
    target,
    queue,
    // No worker polling: run one in this process for as long as the client follows the build.
    async startLocalWorker() {
      if (local) return;
      local = await createWorker({ target, store, taskQueue: queue, identity: `strata-build@${process.pid}`, logLevel: 'ERROR' });
      localRun = local.worker.run();
    },
    async close() {
      if (local) {
        local.worker.shutdown();
        await localRun;
        await local.connection.close();
      }
      await connection.close();
    },
  };
}

type BuildHandle = ReturnType<Client['workflow']['getHandle']>;

/**
 * The build's progress, or undefined when no worker answers in time (2 s). The query is aborted
 * then, not left behind: an abandoned call would go on retrying and, once the connection is
 * closed, crash the process from a timer.
 */
export async function queryProgress(client: Client, handle: BuildHandle, timeoutMs = 2000): Promise<BuildProgress | undefined> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    return await client.connection.withAbortSignal(abort.signal, () => handle.query<BuildProgress>('progress'));
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** A build no worker answers for this long gets one in this process. */
const UNANSWERED_MS = 5_000;

/**
 * Prints a build's progress and RUN output until it ends (0 built, 1 failed, 130 cancelled)
 * or waits for a retry (EXIT_WAITING). A client that just sent a retry passes the count of
 * retries it saw before, so the waiting state that retry ends does not count.
 */
export async function follow(
  storeRoot: string,
  client: Client,
  handle: BuildHandle,
  target: TemporalTarget,
  out: (l: string) => void,
  err: (l: string) => void,
  startLocalWorker: () => Promise<void>,
  retriesBefore = -1,
): Promise<number> {
  let lastAnswer = Date.now();
  const stream = new OutputStreamer(client, handle.workflowId, (text) => process.stdout.write(text));
  const printer = new ProgressPrinter(out, (step) => stream.flushFromLog(storeRoot, step));
  let cancelled = false;
  const onSigint = () => {
    if (cancelled) process.exit(130);
    cancelled = true;
    err('Cancelling the build (Ctrl-C again to leave it running)…');
    handle.cancel().catch(() => undefined);
  };
  process.on('SIGINT', onSigint);
  let settled = false;
  // A client that leaves a waiting build must not stay on the result's long poll.
  const leave = new AbortController();
  const result = client.withAbortSignal(leave.signal, () => handle.result()).finally(() => (settled = true));
  result.catch(() => undefined);
  try {
    while (!settled) {
      await Promise.race([result, new Promise((r) => setTimeout(r, 250))]).catch(() => undefined);
      const p = await queryProgress(client, handle);
      if (!p && Date.now() - lastAnswer > UNANSWERED_MS) {
        // The worker that seemed alive (a recent poller) is gone: do the work here.
        await startLocalWorker();
        lastAnswer = Date.now();
      }
      if (p && p.phase === 'waiting' && (p.retries ?? 0) <= retriesBefore) continue; // the retry is not seen yet
      if (p) {
        lastAnswer = Date.now();
        printer.render(p);
        if (p.phase === 'waiting') {
          printWaiting(p, handle.workflowId, target, err);
          return EXIT_WAITING;
        }
        const running = p.steps.find((s) => s.status === 'running' && s.number === printer.current());
        if (running) await stream.poll(running.number);
      }
    }
    try {
      const r = await result;
      out(`Successfully built ${r.imageId.slice(7, 19)}`);
      for (const t of r.tags) out(`Successfully tagged ${t}`);
      for (const o of r.outputs) out(`Saved image to ${o}`);
      for (const p of r.pushed ?? []) printPushResult(p, out);
      await deliverBuild(storeRoot, handle.workflowId, r, out);
      return 0;
    } catch (e) {
      const p = await queryProgress(client, handle);
      if (p) printer.render(p);
      if (cancelled) {
        err('Build cancelled');
        return 130;
      }
      const message = e instanceof WorkflowFailedError ? (e.cause?.message ?? e.message) : (e as Error).message;
      err(`error: ${message}`);
      if (target.uiUrl) err(`See the build in the Temporal Web UI: ${buildUrl(target, handle.workflowId)}`);
      return 1;
    }
  } finally {
    process.off('SIGINT', onSigint);
    leave.abort();
  }
}

export function buildUrl(target: TemporalTarget, workflowId: string): string {
  return `${target.uiUrl}/namespaces/${target.namespace}/workflows/${workflowId}`;
}

/** The failure, and how to go on: the build stays open until the retry window ends. */
function printWaiting(p: BuildProgress, id: string, target: TemporalTarget, err: (l: string) => void): void {
  for (const s of p.steps.filter((s) => s.status === 'failed')) err(`error: Step ${s.number}/${p.totalSteps} : ${s.text}${s.line ? ` (line ${s.line})` : ''}: ${s.error ?? 'failed'}`);
  err(`The build is waiting for a decision until ${p.waitingUntil ?? 'the retry window ends'} (then it fails):`);
  err(`  strata retry ${id} [--context DIR]   run the failed step again (DIR: a fixed build context)`);
  err(`  strata abort ${id}                   end the build with this error`);
  err(`  strata attach ${id}                  follow it again`);
  if (target.uiUrl) err(`See the build in the Temporal Web UI (Signal "retry" or Reset also work there): ${buildUrl(target, id)}`);
}

/**
 * Streams a running RUN step's output: it arrives in the pending activity's heartbeat
 * details, which any client can read through Temporal, wherever the worker runs.
 */
class OutputStreamer {
  private printed = new Map<number, number>();
  constructor(
    private readonly client: Client,
    private readonly workflowId: string,
    private readonly write: (text: string) => void,
  ) {}

  /** Prints what the step's log holds beyond what was streamed (same-machine stores only). */
  flushFromLog(storeRoot: string, step: number): void {
    let buf: Buffer;
    try {
      buf = readFileSync(stepLogPath(storeRoot, this.workflowId, step));
    } catch {
      return;
    }
    const done = this.printed.get(step) ?? 0;
    if (buf.length > done) {
      const text = buf.subarray(done).toString('utf8');
      this.write(text.endsWith('\n') ? text : text + '\n');
    }
    this.printed.set(step, buf.length);
  }

  /** When describe last ran: RUN heartbeats come once a second, so asking more often finds nothing new. */
  private lastPoll = 0;

  async poll(step: number): Promise<void> {
    if (Date.now() - this.lastPoll < RUN_HEARTBEAT_MS) return;
    this.lastPoll = Date.now();
    const desc = await this.client.workflowService
      .describeWorkflowExecution({ namespace: this.client.options.namespace, execution: { workflowId: this.workflowId } })
      .catch(() => undefined);
    const converter = this.client.options.loadedDataConverter.payloadConverter;
    for (const a of desc?.pendingActivities ?? []) {
      // Only RUN heartbeats carry output; other steps heartbeat with no details.
      if (a.activityType?.name !== 'runStep') continue;
      const payload = a.heartbeatDetails?.payloads?.[0];
      if (!payload) continue;
      let beat: RunHeartbeat | undefined;
      try {
        beat = converter.fromPayload<RunHeartbeat>(payload);
      } catch {
        continue; // streaming is a convenience: it never fails the build's client
      }
      if (!beat || typeof beat.text !== 'string' || typeof beat.offset !== 'number' || beat.step !== step) continue;
      const done = this.printed.get(step) ?? 0;
      const end = beat.offset + Buffer.byteLength(beat.text);
      if (end <= done) continue;
      if (beat.offset > done) this.write(`[… ${beat.offset - done} bytes of output skipped; see strata logs]\n`);
      const text = beat.offset >= done ? beat.text : Buffer.from(beat.text).subarray(done - beat.offset).toString('utf8');
      this.write(text);
      this.printed.set(step, end);
    }
  }
}
