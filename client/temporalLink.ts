// Following a build through Temporal itself: progress queries, heartbeats from describe, the
// result's long poll. The way attach and retry follow, and build's when no background worker
// of this machine takes the build (client/workerLink.ts).
import { removeBuildSecrets } from '../engine/store/secrets.js';
import { temporal } from '../worker/temporalClient.js';
import type { BuildResult } from '../workflows/types.js';
import { EXIT_WAITING } from './errors.js';
import { buildUrl, follow, queryProgress, type BuildHandle, type BuildLink } from './follow.js';
import { activityBeats } from './output.js';
import type { Session } from './session.js';
import { openView, progressMode, type BuildView } from './view.js';

export function temporalLink(s: Session, handle: BuildHandle): BuildLink {
  const { client, target } = s;
  return {
    workflowId: handle.workflowId,
    storeRoot: s.store.root,
    url: target.uiUrl ? buildUrl(target, handle.workflowId) : undefined,
    progress: () => queryProgress(client, handle),
    beats: () => activityBeats(client, handle.workflowId),
    async result(signal) {
      try {
        return (await client.withAbortSignal(signal, () => handle.result())) as BuildResult;
      } catch (e) {
        throw e instanceof temporal.WorkflowFailedError ? new Error(e.cause?.message ?? e.message) : e;
      }
    },
    cancel: () => handle.cancel().then(() => undefined),
    // The worker that seemed alive (a recent poller) is gone: start the background one.
    unanswered: () => s.ensureWorker({ askTemporal: false }),
  };
}

/** Exports the build's cache entries to `repo` with this client's credentials (client/cacheExport.ts). */
export async function exportBuildCache(s: Pick<Session, 'client' | 'store'>, id: string, repo: string): Promise<number> {
  const { buildCacheKeys, exportCache } = await import('./cacheExport.js');
  const n = await exportCache(s.store, await buildCacheKeys(s.client, id), repo);
  process.stderr.write(`Exported ${n} cache entries to ${repo}\n`);
  return n;
}

/** Follows a started build until it ends or waits; once it ended, no step reads its secrets. */
export async function followBuild(s: Session, id: string, retriesBefore?: number, view: BuildView = openView(progressMode(undefined, false))): Promise<number> {
  await s.ensureWorker();
  const { code, cacheTo } = await follow(temporalLink(s, s.client.workflow.getHandle(id)), view, retriesBefore);
  if (code !== EXIT_WAITING) await removeBuildSecrets(s.store.root, id);
  // `strata build --cache-to` of a build that waited for this retry (or attach): its client is gone.
  if (code === 0 && cacheTo) await exportBuildCache(s, id, cacheTo);
  return code;
}
