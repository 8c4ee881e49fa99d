// A session with Temporal, the one way the CLI connects: the configured server (the embedded
// one is started when nothing answers), a client of it, and a worker in this process when no
// other polls the task queue.
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto'; // CommonJS: no named exports under ESM
import { Store } from '../engine/store/store.js';
import { connectionOptions, ensureTemporal, type TemporalTarget } from '../worker/temporal.js';
import { createWorker, taskQueue } from '../worker/worker.js';

export interface Session {
  store: Store;
  client: Client;
  target: TemporalTarget;
  /** The task queue builds go to (STRATA_TASK_QUEUE). */
  queue: string;
  /** True when some worker polled `queue` (default: the session's) recently. */
  hasLiveWorker(queue?: string): Promise<boolean>;
  /** Runs a worker in this process until close(), unless one already runs here. */
  startLocalWorker(): Promise<void>;
  /** Makes sure a worker serves the queue: one in this process when none polls. */
  ensureWorker(): Promise<void>;
  close(): Promise<void>;
}

/** Opens a session on the store (opened here when not given). Close it, or use withSession. */
export async function openSession(store?: Store): Promise<Session> {
  const st = store ?? (await Store.open());
  const target = await ensureTemporal(st.root, (m) => console.error(m));
  const connection = await Connection.connect(connectionOptions(target));
  const client = new Client({ connection, namespace: target.namespace });
  const queue = taskQueue();
  let local: Awaited<ReturnType<typeof createWorker>> | undefined;
  let localRun: Promise<void> | undefined;
  const session: Session = {
    store: st,
    client,
    target,
    queue,
    hasLiveWorker: (q = queue) => hasLiveWorker(client, target.namespace, q),
    // No worker polling: run one in this process for as long as the client follows the build.
    async startLocalWorker() {
      if (local) return;
      local = await createWorker({ target, store: st, taskQueue: queue, identity: `strata-build@${process.pid}`, logLevel: 'ERROR' });
      localRun = local.worker.run();
    },
    async ensureWorker() {
      if (!(await session.hasLiveWorker())) await session.startLocalWorker();
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

/** True when some worker polled the queue recently (a dead one stays listed for minutes). */
async function hasLiveWorker(client: Client, namespace: string, queue: string): Promise<boolean> {
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
