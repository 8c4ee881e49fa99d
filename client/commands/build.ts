// `strata build`: pack the context into the store, start buildImage, follow its progress.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { makeFilter, packContext, readDockerignore } from '../../engine/context/pack.js';
import { parseDockerfile } from '../../engine/dockerfile/parse.js';
import { openLease } from '../../engine/store/leases.js';
import { storeId } from '../../engine/store/identity.js';
import { removeBuildSecrets, writeBuildSecret } from '../../engine/store/secrets.js';
import { remoteFromEnv } from '../../engine/remote/remoteStore.js';
import { Store } from '../../engine/store/store.js';
import type { buildImage } from '../../workflows/buildImage.js';
import type { BuildRequest, OutputSpec } from '../../workflows/types.js';
import { EXIT_WAITING, UsageError } from '../errors.js';
import { recordDelivery } from '../deliver.js';
import type { StartRequest } from '../buildServer.js';
import { LinkLost, follow } from '../follow.js';
import { formatSize } from '../format.js';
import { DEFAULT_RETRY_WINDOW, buildSettings, checkCacheFilter, parseCacheSpec, parseDuration, type BuildFlags } from '../options.js';
import type { Session } from '../session.js';
import { phase, printHistoryTimings, timingEnabled } from '../timing.js';
import { STRATA_VERSION } from '../version.js';
import { openView, progressMode } from '../view.js';
import { WorkerUnavailable, startThroughWorker, workerSocket } from '../workerLink.js';

export interface BuildOptions extends BuildFlags {
  output?: string;
  secret?: string[];
  /** How long a failed step waits for `strata retry`/`abort`: a duration, or 0 to fail at once. */
  retryWindow?: string;
  /** Print the build ID and return instead of following the build. */
  detach?: boolean;
  /** `--progress`: auto, plain, tty or quiet. */
  progress?: string;
  /** `-q`: only the image ID on stdout. */
  quiet?: boolean;
  /** Write the image ID to this file (docker's --iidfile). */
  iidfile?: string;
  /** `--cache-to type=registry,ref=REGISTRY/REPO`: exported by this client after the build. */
  cacheTo?: string;
}

export async function runBuild(contextArg: string, opts: BuildOptions): Promise<number> {
  const out = (line: string) => process.stdout.write(line + '\n');

  phase('cli loaded');
  const mode = progressMode(opts.progress, opts.quiet);
  if (opts.iidfile && opts.detach) throw new UsageError('build: --iidfile needs the build to end: leave out --detach');
  const cacheTo = opts.cacheTo === undefined ? undefined : parseCacheSpec(opts.cacheTo, '--cache-to').ref;
  if (cacheTo && opts.detach) throw new UsageError('build: --cache-to is exported by this client when the build ends: leave out --detach');
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
  // Parsed here too, so a syntax error shows at once, before any workflow; the workflow parses
  // again in its planning activity, whose result is what history records.
  const parsed = parseDockerfile(dockerfileText.toString('utf8'), path.basename(dockerfilePath));
  const settings = buildSettings(opts, 'build');
  checkCacheFilter(settings.noCacheFilter, parsed, 'build');
  const outputs = opts.output ? [parseOutput(opts.output)] : [];
  // A build this client follows is saved and pushed by the client (client/deliver.ts); a detached one asks its worker.
  // --cache-to is recorded too: a build that waits is exported by the retry or attach that sees it succeed.
  const delivery = opts.detach ? undefined : { outputs: outputs.map((o) => o.dest), push: settings.push ? settings.tags : [], ...(cacheTo ? { cacheTo } : {}) };
  const request: Omit<BuildRequest, 'contextDigest' | 'dockerfileDigest'> = {
    dockerfileName: path.basename(dockerfilePath),
    ...settings,
    outputs: delivery ? [] : outputs,
    retryWindowMs: parseRetryWindow(opts.retryWindow ?? (process.env.STRATA_RETRY_WINDOW || DEFAULT_RETRY_WINDOW)),
  };
  if (delivery) delete request.push;

  const secrets = await readSecrets(opts.secret ?? []);
  const remote = remoteFromEnv();
  // Secrets reach workers through this store only; a remote store's workers cannot read it,
  // and secrets never go through the registry.
  if (remote && secrets.size > 0)
    throw new UsageError(
      `build: --secret cannot be used with STRATA_REMOTE (${remote.name}): secrets never go through the registry, and workers on other machines cannot read this store (unset STRATA_REMOTE when the workers share this store)`,
    );
  phase('read Dockerfile');
  // No stale ID for a script to pick up if this build fails (docker removes it too).
  const iidfile = opts.iidfile ? path.resolve(opts.iidfile) : undefined;
  if (iidfile) await fs.rm(iidfile, { force: true });

  const store = await Store.open();
  const workflowId = `build-${randomBytes(6).toString('hex')}`;
  // The context is in the store before the build names it: held from the store's GC while this
  // command runs (with --detach, for an hour: until a worker takes the build up).
  const lease = await openLease(store.root, workflowId);
  let detached = false;
  let session: Session | undefined;
  try {
    const view = openView(mode);
    // The fast path: the store's background worker on this machine starts and follows the build
    // (client/workerLink.ts), and this command loads no Temporal code. A request with outputs
    // names paths for a worker to write: those go through Temporal.
    const sock = request.outputs.length === 0 && !request.push ? await workerSocket(store.root) : undefined;
    // Else connecting to Temporal overlaps with packing the context.
    let opening: Promise<Session> | undefined;
    const openTemporal = () => (opening ??= import('../session.js').then((m) => m.openSession(store)));
    if (!sock) openTemporal().catch(() => undefined); // its failure is reported where it is awaited
    let context: Awaited<ReturnType<Store['putBlobStream']>>;
    let dockerfile: Awaited<ReturnType<Store['putBlob']>>;
    try {
      const filter = makeFilter(await readDockerignore(contextDir, opts.file && !fromStdin ? dockerfilePath : undefined));
      let packed = 0;
      // Counts in the stream itself: a 'data' listener beside the store's pipe would race it.
      const counted = new Transform({
        transform(chunk: Buffer, _enc, done) {
          view.context((packed += chunk.length), false);
          done(null, chunk);
        },
      });
      context = await store.putBlobStream(packContext(contextDir, filter).pipe(counted));
      dockerfile = await store.putBlob(dockerfileText);
      await lease.add({ blobs: [context.digest, dockerfile.digest] });
      // Workers on other machines fetch them from the remote store (engine/remote/).
      await remote?.putBlobs(store, [context.digest, dockerfile.digest]);
      await lease.close(); // named now: no need to hold whatever else is stored meanwhile
      request.storeId = await storeId(store);
    } catch (e) {
      await opening?.then((s) => s.close()).catch(() => undefined);
      throw e;
    }
    view.context(context.size, true);
    phase('pack context');

    let secretsOf: string | undefined;
    let code = 1;
    try {
      secretsOf = workflowId;
      // Secrets reach the worker through the store, never through Temporal's history.
      for (const [id, value] of secrets) await writeBuildSecret(store.root, workflowId, id, value);
      const described = { contextDir, contextSize: context.size, dockerfilePath: fromStdin ? '-' : dockerfilePath };
      if (delivery) await recordDelivery(store.root, workflowId, delivery);
      const start = {
        workflowId,
        request: { ...request, contextDigest: context.digest, dockerfileDigest: dockerfile.digest },
        // What the Web UI shows of the build (the request itself is digests).
        summary: buildSummary(request),
        details: buildDetails(request, { ...described, contextDigest: context.digest }),
        memo: buildMemo(request, described),
      };
      const throughWorker = sock
        ? await startThroughWorker(sock, store.root, start).catch((e: Error) => {
            if (e instanceof WorkerUnavailable) return undefined;
            throw e;
          })
        : undefined;
      if (throughWorker) phase('start via worker');
      const throughTemporal = async () => {
        session = await openTemporal();
        phase('connect temporal');
        // With no worker serving the queue, the store's background worker starts (and stays).
        await session.ensureWorker();
        phase('worker check');
        return (await import('../temporalLink.js')).temporalLink(session, await startThroughTemporal(session, start));
      };
      const link = throughWorker ?? (await throughTemporal());
      // The ID is what `strata logs` and the Web UI know the build by.
      if (opts.detach) {
        out(mode === 'quiet' ? workflowId : `Build ID: ${workflowId}`);
        phase('start workflow');
        secretsOf = undefined; // the build still needs them; the client that sees it end removes them
        detached = true;
        return (code = 0);
      }
      view.note(`Build ID: ${workflowId}`);
      phase('start workflow');
      let followed;
      try {
        followed = await follow(link, view);
      } catch (e) {
        if (!(e instanceof LinkLost)) throw e;
        // The background worker went (stopped, replaced): the build goes on; follow it through Temporal.
        const s = (session = await openTemporal());
        await s.ensureWorker();
        followed = await follow((await import('../temporalLink.js')).temporalLink(s, s.client.workflow.getHandle(workflowId)), view);
      }
      phase('follow to result');
      if (followed.code === 0 && cacheTo) {
        // With this client's credentials, as --push (client/cacheExport.ts); the keys are in the build's history.
        const s = (session ??= await openTemporal());
        const { buildCacheKeys, exportCache } = await import('../cacheExport.js');
        const n = await exportCache(store, await buildCacheKeys(s.client, workflowId), cacheTo);
        if (mode !== 'quiet') process.stderr.write(`Exported ${n} cache entries to ${cacheTo}\n`);
        phase('export cache');
      }
      if (followed.result && iidfile) await fs.writeFile(iidfile, followed.result.imageId);
      if (timingEnabled()) {
        if (session) await printHistoryTimings(session.client, workflowId);
        else if (throughWorker) process.stderr.write(await throughWorker.timings().catch((e: Error) => `timing: ${e.message}\n`));
      }
      return (code = followed.code);
    } finally {
      // A waiting build may still run a step that reads them.
      if (secretsOf && code !== EXIT_WAITING) await removeBuildSecrets(store.root, secretsOf);
    }
  } finally {
    await (session as Session | undefined)?.close();
    if (!detached) await lease.release();
  }
}

/** Starts the build with the session's Temporal client; a start the worker took before it went is found, not repeated. */
async function startThroughTemporal(session: Session, start: Omit<StartRequest, 'op'>) {
  const { temporal } = await import('../../worker/temporalClient.js');
  try {
    return await session.client.workflow.start<typeof buildImage>('buildImage', {
      taskQueue: session.queue,
      workflowId: start.workflowId,
      args: [start.request],
      staticSummary: start.summary,
      staticDetails: start.details,
      memo: start.memo,
    });
  } catch (e) {
    if (!(e instanceof temporal.WorkflowExecutionAlreadyStartedError)) throw e;
    return session.client.workflow.getHandle(start.workflowId);
  }
}

/** The Web UI's one line for the build: its tags, or its Dockerfile and target. */
export function buildSummary(r: Pick<BuildRequest, 'tags' | 'dockerfileName' | 'target'>): string {
  const what = r.tags.length > 0 ? r.tags.join(', ') : `untagged image of ${r.dockerfileName}`;
  return `strata build ${what}${r.target ? ` (target ${r.target})` : ''}`;
}

/** The Web UI's details of a build (Temporal markdown): what a person reads the request for. */
export function buildDetails(
  r: Omit<BuildRequest, 'contextDigest' | 'dockerfileDigest'>,
  d: { contextDir: string; contextSize: number; contextDigest: string; dockerfilePath: string },
): string {
  const code = (v: string) => `\`${v.replace(/`/g, "'")}\``;
  const list = (m: Record<string, string> | undefined) =>
    Object.entries(m ?? {})
      .map(([k, v]) => code(`${k}=${v}`))
      .join(', ');
  return [
    `**Tags:** ${r.tags.length > 0 ? r.tags.map(code).join(', ') : 'none'}`,
    `**Context:** ${code(d.contextDir)} (${formatSize(d.contextSize)}, ${code(d.contextDigest.slice(0, 19))})`,
    `**Dockerfile:** ${code(d.dockerfilePath === '-' ? 'standard input' : d.dockerfilePath)}`,
    ...(r.target ? [`**Target:** ${code(r.target)}`] : []),
    ...(Object.keys(r.buildArgs).length > 0 ? [`**Build args:** ${list(r.buildArgs)}`] : []),
    ...(r.labels && Object.keys(r.labels).length > 0 ? [`**Labels:** ${list(r.labels)}`] : []),
    ...(r.push ? ['**Push:** each tag, after the build'] : []),
    `**Started by:** ${code(`${os.userInfo().username}@${os.hostname()}`)} with strata ${STRATA_VERSION}`,
  ].join('\n\n');
}

/** The memo: the request's human fields (the workflow input has digests), for the UI and `describe`. */
export function buildMemo(r: Omit<BuildRequest, 'contextDigest' | 'dockerfileDigest'>, d: { contextDir: string; dockerfilePath: string }): Record<string, unknown> {
  return {
    tags: r.tags,
    context: d.contextDir,
    dockerfile: d.dockerfilePath,
    ...(r.target ? { target: r.target } : {}),
    ...(Object.keys(r.buildArgs).length > 0 ? { buildArgs: r.buildArgs } : {}),
    ...(r.labels && Object.keys(r.labels).length > 0 ? { labels: r.labels } : {}),
    ...(r.push ? { push: true } : {}),
    client: `${os.userInfo().username}@${os.hostname()}`,
  };
}

/** A retry window: a duration, or 0 (fail at once). */
export function parseRetryWindow(s: string): number {
  return /^0+[hms]?$/.test(s.trim()) ? 0 : parseDuration(s);
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
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
      out.set(
        id,
        await fs.readFile(path.resolve(cwd, src)).catch((e: NodeJS.ErrnoException) => {
          throw new UsageError(`--secret ${id}: cannot read ${src}: ${e.code ?? e.message}`);
        }),
      );
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
