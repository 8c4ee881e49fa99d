// Builds as records: follow one again (attach), decide on a failed step (retry, abort), and
// list or describe builds through Temporal's visibility and the progress query.
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { WorkflowFailedError, type WorkflowExecutionInfo } from '@temporalio/client';
import { removeBuildSecrets } from '../../../engine/store/secrets.js';
import type { Store } from '../../../engine/store/store.js';
import { normalizeReference } from '../../../engine/image/reference.js';
import { CONTEXT_ATTRIBUTE, SCHEDULE_ATTRIBUTE_NAME, STATUS_ATTRIBUTE, TAGS_ATTRIBUTE } from '../../../workflows/searchAttributes.js';
import type { BuildProgress, BuildResult, BuildStatus, RetryRequest } from '../../../workflows/types.js';
import { EXIT_WAITING, UsageError, buildUrl, follow, hasLiveWorker, openSession, queryProgress, type Session } from '../build.js';
import { makeFilter, packContext, readDockerignore } from '../../../engine/context/pack.js';
import { formatSize } from '../../progress.js';

const out = (line: string) => process.stdout.write(line + '\n');
const err = (line: string) => process.stderr.write(line + '\n');

async function withSession<T>(store: Store, fn: (s: Session) => Promise<T>): Promise<T> {
  const session = await openSession(store, err);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

/** Nothing else runs builds: this process does, while it follows one. */
async function ensureWorker(s: Session): Promise<void> {
  if (!(await hasLiveWorker(s.client, s.target.namespace, s.queue))) await s.startLocalWorker();
}

/** The build's progress from its newest run; a worker in this process answers when none does. */
async function progressOf(s: Session, id: string): Promise<BuildProgress> {
  const handle = s.client.workflow.getHandle(id);
  await handle.describe().catch(() => {
    throw new UsageError(`no build ${id} on ${s.target.address}`);
  });
  return answeredProgress(s, handle);
}

/**
 * The progress query, answered: a worker that polled a moment ago may be gone (the client
 * that ran it exited), so an unanswered query is asked again with a worker in this process.
 */
async function answeredProgress(s: Session, handle: ReturnType<Session['client']['workflow']['getHandle']>): Promise<BuildProgress> {
  await ensureWorker(s);
  const p = await queryProgress(s.client, handle, 5000);
  if (p) return p;
  await s.startLocalWorker();
  return handle.query<BuildProgress>('progress');
}

async function followBuild(store: Store, s: Session, id: string, retriesBefore?: number): Promise<number> {
  await ensureWorker(s);
  const code = await follow(store.root, s.client, s.client.workflow.getHandle(id), s.target, out, err, s.startLocalWorker, retriesBefore);
  // The build is over: no step reads its secrets any more.
  if (code !== EXIT_WAITING) await removeBuildSecrets(store.root, id);
  return code;
}

/** `strata attach BUILD`: follows a build like `strata build` does after starting it. */
export async function attachBuild(store: Store, id: string): Promise<number> {
  return withSession(store, async (s) => {
    await s.client.workflow.getHandle(id).describe().catch(() => {
      throw new UsageError(`attach: no build ${id} on ${s.target.address}`);
    });
    return followBuild(store, s, id);
  });
}

/** `strata retry BUILD [--context DIR]`: runs the failed step again, then follows the build. */
export async function retryBuild(store: Store, id: string, opts: { context?: string; detach?: boolean }): Promise<number> {
  let request: RetryRequest = {};
  if (opts.context) {
    const dir = path.resolve(opts.context);
    if (!(await fs.stat(dir).catch(() => undefined))?.isDirectory()) throw new UsageError(`retry: context ${opts.context} is not a directory`);
    const context = await store.putBlobStream(packContext(dir, makeFilter(await readDockerignore(dir))));
    out(`Sending build context to strata  ${formatSize(context.size)}`);
    request = { contextDigest: context.digest };
  }
  return withSession(store, async (s) => {
    const p = await progressOf(s, id);
    if (p.phase !== 'waiting') throw new UsageError(`retry: build ${id} is not waiting for a retry (it is ${p.phase})`);
    await s.client.workflow.getHandle(id).signal('retry', request);
    out(`Retrying ${p.steps.filter((x) => x.status === 'failed').map((x) => `step ${x.number}`).join(', ')} of ${id}`);
    if (opts.detach) return 0;
    return followBuild(store, s, id, p.retries ?? 0);
  });
}

/** `strata abort BUILD`: a waiting build fails with its step's error. */
export async function abortBuild(store: Store, id: string): Promise<number> {
  return withSession(store, async (s) => {
    const p = await progressOf(s, id);
    if (p.phase !== 'waiting') throw new UsageError(`abort: build ${id} is not waiting for a retry (it is ${p.phase}); use Ctrl-C in its client or the Web UI to cancel a running build`);
    const handle = s.client.workflow.getHandle(id);
    await handle.signal('abort');
    try {
      await handle.result();
    } catch (e) {
      err(`Build ${id} aborted: ${e instanceof WorkflowFailedError ? (e.cause?.message ?? e.message) : (e as Error).message}`);
      await removeBuildSecrets(store.root, id);
      return 0;
    }
    throw new UsageError(`abort: build ${id} finished before the abort arrived`);
  });
}

/** A visibility query string literal. */
function literal(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

export const BUILD_STATUSES: BuildStatus[] = ['running', 'waiting', 'succeeded', 'failed', 'cancelled'];

export interface ListOptions {
  tag?: string;
  status?: string;
  schedule?: string;
}

/** The visibility query `strata builds ls` sends. */
export function listQuery(opts: ListOptions): string {
  const terms = [`WorkflowType = 'buildImage'`];
  if (opts.tag) terms.push(`${TAGS_ATTRIBUTE.name} = ${literal(normalizeReference(opts.tag))}`);
  if (opts.status) {
    if (!BUILD_STATUSES.includes(opts.status as BuildStatus)) throw new UsageError(`builds ls: --status must be one of ${BUILD_STATUSES.join(', ')}`);
    terms.push(`${STATUS_ATTRIBUTE.name} = ${literal(opts.status)}`);
    // A run ended by a Reset or a terminate keeps the status it last set.
    if (opts.status === 'running' || opts.status === 'waiting') terms.push(`ExecutionStatus = 'Running'`);
  }
  if (opts.schedule) terms.push(`${SCHEDULE_ATTRIBUTE_NAME} = ${literal(opts.schedule)}`);
  return terms.join(' AND ');
}

/** The status a user means: ours while the run is open or ended by itself; Temporal's otherwise. */
function statusOf(info: Pick<WorkflowExecutionInfo, 'status' | 'typedSearchAttributes'>): string {
  const ours = info.typedSearchAttributes.get(STATUS_ATTRIBUTE);
  if (info.status.name === 'RUNNING') return ours ?? 'running';
  if (info.status.name === 'COMPLETED') return 'succeeded';
  if (info.status.name === 'FAILED') return 'failed';
  if (info.status.name === 'CANCELLED') return 'cancelled';
  return info.status.name.toLowerCase().replace(/_/g, ' ');
}

/** `strata builds ls`: newest first. */
export async function listBuilds(store: Store, opts: ListOptions): Promise<void> {
  const query = listQuery(opts);
  await withSession(store, async (s) => {
    const rows = [['BUILD ID', 'STATUS', 'STARTED', 'DURATION', 'TAGS']];
    for await (const info of s.client.workflow.list({ query })) {
      const end = info.closeTime ?? new Date();
      rows.push([
        info.workflowId,
        statusOf(info),
        info.startTime.toISOString().replace(/\.\d+Z$/, 'Z'),
        formatDuration(end.getTime() - info.startTime.getTime()),
        (info.typedSearchAttributes.get(TAGS_ATTRIBUTE) ?? []).join(','),
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) out(r.map((c, i) => c.padEnd(widths[i]! + 3)).join('').trimEnd());
  });
}

/** `strata builds describe BUILD`: status, timings, steps and the image. */
export async function describeBuild(store: Store, id: string): Promise<void> {
  await withSession(store, async (s) => {
    const handle = s.client.workflow.getHandle(id);
    const info = await handle.describe().catch(() => {
      throw new UsageError(`builds describe: no build ${id} on ${s.target.address}`);
    });
    const p = await answeredProgress(s, handle);
    out(`Build:     ${id}`);
    out(`Status:    ${statusOf(info)}${p.phase === 'waiting' && p.waitingUntil ? ` (a step failed; waiting for retry or abort until ${p.waitingUntil})` : ''}`);
    out(`Started:   ${info.startTime.toISOString()}`);
    if (info.closeTime) out(`Ended:     ${info.closeTime.toISOString()} (${formatDuration(info.closeTime.getTime() - info.startTime.getTime())})`);
    const tags = info.typedSearchAttributes.get(TAGS_ATTRIBUTE) ?? [];
    if (tags.length > 0) out(`Tags:      ${tags.join(', ')}`);
    out(`Context:   ${info.typedSearchAttributes.get(CONTEXT_ATTRIBUTE) ?? '?'}`);
    const schedule = info.searchAttributes[SCHEDULE_ATTRIBUTE_NAME]?.[0];
    if (schedule) out(`Schedule:  ${String(schedule)}`);
    if (info.status.name === 'COMPLETED') {
      const r = (await handle.result()) as BuildResult;
      out(`Image ID:  ${r.imageId}`);
      for (const o of r.outputs) out(`Saved to:  ${o}`);
    }
    if ((p.retries ?? 0) > 0) out(`Retries:   ${p.retries}`);
    out('Steps:');
    for (const st of [...p.steps].sort((a, b) => a.number - b.number)) {
      const took = st.startedAt && st.endedAt ? formatDuration(Date.parse(st.endedAt) - Date.parse(st.startedAt)) : '';
      const runs = (st.runs ?? 0) > 1 ? ` runs=${st.runs}` : '';
      out(`  ${String(st.number).padStart(2)}  ${st.status.padEnd(7)}  ${took.padStart(6)}  ${st.text}${st.layer ? `  ---> ${st.layer}` : ''}${runs}`);
      if (st.error) out(`      error: ${st.error}`);
    }
    if (s.target.uiUrl) out(`Web UI:    ${buildUrl(s.target, id)}`);
  });
}

function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const sec = Math.round(ms / 1000);
  if (sec < 60) return `${sec}s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m${String(sec % 60).padStart(2, '0')}s`;
  return `${Math.floor(min / 60)}h${String(min % 60).padStart(2, '0')}m`;
}
