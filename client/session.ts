// A session with Temporal, the one way the CLI connects: the configured server (the embedded
// one is started when nothing answers), a client of it, and the knowledge of whether a worker
// serves the task queue — this machine's workers say so in the store (worker/registry.ts);
// when none does, the store's background worker is started, once, and outlives the command.
import os from 'node:os';
import type { Client } from '@temporalio/client';
import { Store } from '../engine/store/store.js';
import { envDifferences, localWorkerFor, startBackgroundWorker, strataBuild } from '../worker/registry.js';
import { connectTemporal, type TemporalTarget } from '../worker/temporal.js';
import { temporal, temporalProto as proto } from '../worker/temporalClient.js';
import { taskQueue } from '../worker/queue.js';

export interface Session {
  store: Store;
  client: Client;
  target: TemporalTarget;
  /** The task queue builds go to (STRATA_TASK_QUEUE). */
  queue: string;
  /**
   * True when a worker serves `queue` (default: the session's): one of this machine's that
   * recorded itself in the store, else one that polled Temporal recently.
   */
  hasLiveWorker(queue?: string): Promise<boolean>;
  /**
   * Makes sure a worker serves the session's queue: starts the store's background worker when
   * none does. `askTemporal: false` trusts only this machine's records (Temporal lists a dead
   * poller for a minute after it went).
   */
  ensureWorker(opts?: { askTemporal?: boolean }): Promise<void>;
  close(): Promise<void>;
}

/** Opens a session on the store (opened here when not given). Close it, or use withSession. */
export async function openSession(store?: Store): Promise<Session> {
  const st = store ?? (await Store.open());
  const { target, connection } = await connectTemporal(st.root, (m) => console.error(m));
  const client = new temporal.Client({ connection, namespace: target.namespace });
  const queue = taskQueue();
  const local = async (q: string) => {
    const rec = await localWorkerFor(st.root, target, q);
    const differs = rec?.background && q === queue ? envDifferences(rec) : [];
    if (differs.length > 0 && !warned) {
      warned = true;
      console.error(
        `warning: the background worker (pid ${rec!.pid}) runs with another ${differs.join(', ')} than this command; \`strata worker stop\` lets the next build start one with these`,
      );
    }
    return rec;
  };
  let warned = false;
  const session: Session = {
    store: st,
    client,
    target,
    queue,
    hasLiveWorker: async (q = queue) => !!(await local(q)) || (await polledRecently(client, target.namespace, q)),
    async ensureWorker({ askTemporal = true } = {}) {
      const rec = await local(queue);
      // A background worker of another build of strata is replaced (startBackgroundWorker stops it).
      const stale = rec?.background && rec.build !== strataBuild();
      if (rec && !stale) return;
      if (!stale && askTemporal && (await polledRecently(client, target.namespace, queue))) return;
      await startBackgroundWorker(st.root, target, queue, (m) => console.error(m));
    },
    close: () => connection.close(),
  };
  return session;
}

/** Runs `fn` in a session and closes it, whatever `fn` does. */
export async function withSession<T>(fn: (s: Session) => Promise<T>, store?: Store): Promise<T> {
  const session = await openSession(store);
  try {
    return await fn(session);
  } finally {
    await session.close();
  }
}

/**
 * True when some worker polled the queue recently: workers of other machines and containers
 * (docker-compose) are known only this way. A dead one stays listed for a minute; one that
 * ran on this machine (identity `pid@host`, the SDK's default) and is gone is not counted.
 */
async function polledRecently(client: Client, namespace: string, queue: string): Promise<boolean> {
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
      return Date.now() - seconds * 1000 < recentMs && !goneFromThisMachine(p.identity ?? '');
    });
    if (!live) return false;
  }
  return true;
}

function goneFromThisMachine(identity: string): boolean {
  const m = /^(\d+)@(.+)$/.exec(identity);
  if (!m || m[2] !== os.hostname()) return false;
  try {
    process.kill(Number(m[1]), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
