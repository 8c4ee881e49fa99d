// Following a build: its progress shown (client/view.ts) until it ends or waits for a retry,
// and the progress query that attach, retry, abort and builds describe ask.
import type { Client } from '@temporalio/client';
import { removeBuildSecrets } from '../engine/store/secrets.js';
import type { TemporalTarget } from '../worker/temporal.js';
import { temporal } from '../worker/temporalClient.js';
import type { BuildProgress, BuildResult } from '../workflows/types.js';
import { EXIT_WAITING, UsageError } from './errors.js';
import { deliverBuild } from './deliver.js';
import { remoteFromEnv } from '../engine/remote/remoteStore.js';
import { MEDIA_TYPE_MANIFEST } from '../engine/image/types.js';
import type { Session } from './session.js';
import { openView, progressMode, type BuildView } from './view.js';

export type BuildHandle = ReturnType<Client['workflow']['getHandle']>;

const err = (line: string) => process.stderr.write(line + '\n');

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

/**
 * The progress query, answered: a worker that polled a moment ago may be gone, so an
 * unanswered query is asked again once this machine's records say a worker serves the queue.
 */
export async function answeredProgress(s: Session, handle: BuildHandle): Promise<BuildProgress> {
  await s.ensureWorker();
  const p = await queryProgress(s.client, handle, 5000);
  if (p) return p;
  await s.ensureWorker({ askTemporal: false });
  return handle.query<BuildProgress>('progress');
}

/** The build's progress from its newest run; the background worker answers when none does. */
export async function progressOf(s: Session, id: string): Promise<BuildProgress> {
  const handle = s.client.workflow.getHandle(id);
  await handle.describe().catch(() => {
    throw new UsageError(`no build ${id} on ${s.target.address}`);
  });
  return answeredProgress(s, handle);
}

/** Follows a started build until it ends or waits; once it ended, no step reads its secrets. */
export async function followBuild(s: Session, id: string, retriesBefore?: number, view: BuildView = openView(progressMode(undefined, false))): Promise<number> {
  await s.ensureWorker();
  const { code } = await follow(s, s.client.workflow.getHandle(id), view, retriesBefore);
  if (code !== EXIT_WAITING) await removeBuildSecrets(s.store.root, id);
  return code;
}

/** A build no worker answers for this long gets the background worker (when no worker of this machine serves it). */
const UNANSWERED_MS = 5_000;

/**
 * Shows a build's progress and RUN output (as `view` does) until it ends (0 built, 1 failed,
 * 130 cancelled) or waits for a retry (EXIT_WAITING). A client that just sent a retry passes
 * the count of retries it saw before, so the waiting state that retry ends does not count.
 */
export async function follow(s: Session, handle: BuildHandle, view: BuildView, retriesBefore = -1): Promise<{ code: number; result?: BuildResult }> {
  const { client, target } = s;
  let lastAnswer = Date.now();
  view.follow({ client, workflowId: handle.workflowId, storeRoot: s.store.root });
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
        // The worker that seemed alive (a recent poller) is gone: start the background one.
        await s.ensureWorker({ askTemporal: false });
        lastAnswer = Date.now();
      }
      if (p && p.phase === 'waiting' && (p.retries ?? 0) <= retriesBefore) continue; // the retry is not seen yet
      if (p) {
        lastAnswer = Date.now();
        if (p.phase === 'waiting') {
          view.end(p);
          printWaiting(p, handle.workflowId, target);
          return { code: EXIT_WAITING };
        }
        await view.update(p);
      }
    }
    try {
      const r = (await result) as BuildResult;
      view.end(await queryProgress(client, handle));
      // With a remote store the image was made on other machines: it comes here, tags and all.
      const remote = remoteFromEnv();
      if (remote) {
        await remote.getImage(s.store, r.manifestDigest);
        await s.store.setTags(r.tags, { mediaType: MEDIA_TYPE_MANIFEST, digest: r.manifestDigest, size: (await s.store.readBlob(r.manifestDigest)).length });
      }
      view.succeeded(r);
      // What this client saves and pushes (client/deliver.ts) prints as the view shows lines.
      await deliverBuild(
        s.store.root,
        handle.workflowId,
        r,
        (line) => view.note(line),
        (p) => view.pushing(p),
      );
      return { code: 0, result: r };
    } catch (e) {
      view.end(await queryProgress(client, handle));
      if (cancelled) {
        err('Build cancelled');
        return { code: 130 };
      }
      const message = e instanceof temporal.WorkflowFailedError ? (e.cause?.message ?? e.message) : (e as Error).message;
      err(`error: ${message}`);
      if (target.uiUrl) err(`See the build in the Temporal Web UI: ${buildUrl(target, handle.workflowId)}`);
      return { code: 1 };
    }
  } finally {
    process.off('SIGINT', onSigint);
    leave.abort();
  }
}

/** The build's page in the Temporal Web UI. */
export function buildUrl(target: TemporalTarget, workflowId: string): string {
  return `${target.uiUrl}/namespaces/${target.namespace}/workflows/${workflowId}`;
}

/** The failure, and how to go on: the build stays open until the retry window ends. */
function printWaiting(p: BuildProgress, id: string, target: TemporalTarget): void {
  for (const s of p.steps.filter((s) => s.status === 'failed'))
    err(`error: Step ${s.number}/${p.totalSteps} : ${s.text}${s.line ? ` (line ${s.line})` : ''}: ${s.error ?? 'failed'}`);
  err(`The build is waiting for a decision until ${p.waitingUntil ?? 'the retry window ends'} (then it fails):`);
  err(`  strata retry ${id} [--context DIR]   run the failed step again (DIR: a fixed build context)`);
  err(`  strata abort ${id}                   end the build with this error`);
  err(`  strata attach ${id}                  follow it again`);
  if (target.uiUrl) err(`See the build in the Temporal Web UI (Signal "retry" or Reset also work there): ${buildUrl(target, id)}`);
}
