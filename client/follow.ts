// Following a build: its progress shown (client/view.ts) until it ends or waits for a retry,
// and the progress query that attach, retry, abort and builds describe ask. A build is followed
// through a BuildLink: Temporal itself (client/temporalLink.ts) or the store's background worker
// (client/workerLink.ts); this module loads no Temporal code, so the latter never pays for it.
import type { Client } from '@temporalio/client';
import type { TemporalTarget } from '../worker/target.js';
import type { BuildProgress, BuildResult } from '../workflows/types.js';
import { EXIT_WAITING, UsageError } from './errors.js';
import { deliverBuild, fetchRemoteImage } from './deliver.js';
import type { ActivityBeat } from './output.js';
import type { Session } from './session.js';
import type { BuildView } from './view.js';

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

/** How a client reaches a started build. */
export interface BuildLink {
  workflowId: string;
  storeRoot: string;
  /** The build's page in the Web UI, when there is one. */
  url?: string;
  /** The build's progress, or undefined when no worker answers in time. */
  progress(): Promise<BuildProgress | undefined>;
  beats(): Promise<ActivityBeat[]>;
  /** Resolves with the result; rejects with the failure's own message, or LinkLost. */
  result(signal: AbortSignal): Promise<BuildResult>;
  cancel(): Promise<void>;
  /** No progress for a while: the worker that seemed alive may be gone; start one. */
  unanswered(): Promise<void>;
}

/** The link to the build broke (the background worker went): follow it another way. */
export class LinkLost extends Error {}

/** A build no worker answers for this long gets the background worker (when no worker of this machine serves it). */
const UNANSWERED_MS = 5_000;

/**
 * Shows a build's progress and RUN output (as `view` does) until it ends (0 built, 1 failed,
 * 130 cancelled) or waits for a retry (EXIT_WAITING). A client that just sent a retry passes
 * the count of retries it saw before, so the waiting state that retry ends does not count.
 */
export async function follow(link: BuildLink, view: BuildView, retriesBefore = -1): Promise<{ code: number; result?: BuildResult; cacheTo?: string }> {
  let lastAnswer = Date.now();
  view.follow(link);
  let cancelled = false;
  const onSigint = () => {
    if (cancelled) process.exit(130);
    cancelled = true;
    err('Cancelling the build (Ctrl-C again to leave it running)…');
    link.cancel().catch(() => undefined);
  };
  process.on('SIGINT', onSigint);
  let settled = false;
  // A client that leaves a waiting build must not stay on the result's long poll.
  const leave = new AbortController();
  const result = link.result(leave.signal).finally(() => (settled = true));
  result.catch(() => undefined);
  try {
    while (!settled) {
      await Promise.race([result, new Promise((r) => setTimeout(r, 250))]).catch(() => undefined);
      const p = await link.progress();
      if (!p && Date.now() - lastAnswer > UNANSWERED_MS) {
        await link.unanswered();
        lastAnswer = Date.now();
      }
      if (p && p.phase === 'waiting' && (p.retries ?? 0) <= retriesBefore) continue; // the retry is not seen yet
      if (p) {
        lastAnswer = Date.now();
        if (p.phase === 'waiting') {
          view.end(p);
          printWaiting(p, link);
          return { code: EXIT_WAITING };
        }
        await view.update(p);
      }
    }
    let r: BuildResult;
    try {
      r = await result;
    } catch (e) {
      if (e instanceof LinkLost && !cancelled) throw e; // the caller follows on through Temporal
      view.end(await link.progress());
      if (cancelled) {
        err('Build cancelled');
        return { code: 130 };
      }
      err(`error: ${(e as Error).message}`);
      if (link.url) err(`See the build in the Temporal Web UI: ${link.url}`);
      return { code: 1 };
    }
    view.end(await link.progress());
    await fetchRemoteImage(link.storeRoot, r);
    view.succeeded(r);
    // What this client saves and pushes (client/deliver.ts) prints as the view shows lines.
    const { cacheTo } = await deliverBuild(
      link.storeRoot,
      link.workflowId,
      r,
      (line) => view.note(line),
      (p) => view.pushing(p),
    );
    return { code: 0, result: r, ...(cacheTo ? { cacheTo } : {}) };
  } finally {
    process.off('SIGINT', onSigint);
    leave.abort();
  }
}

/** The build's page in the Temporal Web UI. */
export function buildUrl(target: Pick<TemporalTarget, 'uiUrl' | 'namespace'>, workflowId: string): string {
  return `${target.uiUrl}/namespaces/${target.namespace}/workflows/${workflowId}`;
}

/** The failure, and how to go on: the build stays open until the retry window ends. */
function printWaiting(p: BuildProgress, link: BuildLink): void {
  const id = link.workflowId;
  for (const s of p.steps.filter((s) => s.status === 'failed'))
    err(`error: Step ${s.number}/${p.totalSteps} : ${s.text}${s.line ? ` (line ${s.line})` : ''}: ${s.error ?? 'failed'}`);
  err(`The build is waiting for a decision until ${p.waitingUntil ?? 'the retry window ends'} (then it fails):`);
  err(`  strata retry ${id} [--context DIR]   run the failed step again (DIR: a fixed build context)`);
  err(`  strata abort ${id}                   end the build with this error`);
  err(`  strata attach ${id}                  follow it again`);
  if (link.url) err(`See the build in the Temporal Web UI (Signal "retry" or Reset also work there): ${link.url}`);
}
