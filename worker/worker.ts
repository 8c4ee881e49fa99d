// The worker: the composition root that gives the activities their store and polls the
// task queue for workflow and activity tasks.
import { promises as fs } from 'node:fs';
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { createPullActivities } from '../activities/pull.js';
import { remoteFromEnv } from '../engine/remote/remoteStore.js';
import { createPushActivities } from '../activities/push.js';
import { createScheduleActivities } from '../activities/schedule.js';
import { parseSize } from '../engine/cache/size.js';
import { withInputChecks } from '../activities/validate.js';
import { reclaimDeadOwners } from '../engine/runtime/reclaim.js';
import { deniedNetworks } from '../engine/runtime/network.js';
import type { Store } from '../engine/store/store.js';
import { BUNDLE_PATH, WORKFLOWS_PATH } from './bundle.js';
import { taskQueue } from './queue.js';
import { ownQueue, withWorkerQueue } from './workerQueue.js';
import type { WorkerRights } from './rights.js';
import { connectionOptions, type TemporalTarget } from './temporal.js';

export { DEFAULT_TASK_QUEUE, taskQueue } from './queue.js';

let runtimeInstalled = false;

let rejectionsLogged = false;

/**
 * A worker serves many builds: one stray rejected promise must not take them all down.
 * It is logged with its stack (a bug to fix), and the worker goes on. Installed by the first
 * worker of a process only, so CLI commands that run none keep failing on such a bug.
 */
function logUnhandledRejections(): void {
  if (rejectionsLogged) return;
  rejectionsLogged = true;
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`[worker ERROR] unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
  });
}

/** Temporal's own logs go to stderr at WARN unless STRATA_LOG_LEVEL says otherwise. */
function installRuntime(defaultLevel: LogLevel): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (process.env.STRATA_LOG_LEVEL?.toUpperCase() ?? defaultLevel) as LogLevel;
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      process.stderr.write(`[worker ${entry.level}] ${entry.message}${entry.meta && Object.keys(entry.meta).length ? ' ' + JSON.stringify(entry.meta) : ''}\n`);
    }),
    telemetryOptions: { logging: { filter: { core: level === 'TRACE' ? 'TRACE' : 'WARN', other: 'ERROR' }, forward: {} } },
  });
}

export interface WorkerOptions {
  target: TemporalTarget;
  store: Store;
  taskQueue?: string;
  identity?: string;
  /** WARN for `strata worker`; a build's in-process worker says only ERRORs (the CLI reports failures). */
  logLevel?: LogLevel;
  /** What builds may make this worker do beyond building (worker/rights.ts); nothing when absent. */
  rights?: WorkerRights;
  /** Entitlements refused to every build (`strata worker --deny-entitlement`). */
  deniedEntitlements?: string[];
}

/** The shared queue's worker and the one of its own queue, run and stopped together. */
export interface StrataWorker {
  /** Polls both queues until `shutdown()` (or until either worker fails: then both stop). */
  run(): Promise<void>;
  shutdown(): void;
  /** This worker's own task queue (steps of a stage it runs are routed to it). */
  readonly ownQueue: string;
}

/** Creates a worker ready to run; `worker.run()` polls until `worker.shutdown()`. */
export async function createWorker(opts: WorkerOptions): Promise<{ worker: StrataWorker; connection: NativeConnection }> {
  installRuntime(opts.logLevel ?? 'WARN');
  logUnhandledRejections();
  deniedNetworks(); // a bad STRATA_RUN_DENY_NETWORKS stops the worker now, not each RUN step
  await reclaimLeftovers(opts.store, opts.logLevel !== 'ERROR');
  // Workers elsewhere on a shared store die too; their leftovers are only known to be dead later.
  setInterval(() => void reclaimLeftovers(opts.store, opts.logLevel !== 'ERROR'), RECLAIM_MS).unref();
  const connection = await NativeConnection.connect(connectionOptions(opts.target));
  const activityDeps = { store: opts.store, ...opts.rights, deniedEntitlements: opts.deniedEntitlements, cacheMax: cacheMaxFromEnv(), remote: remoteFromEnv() };
  const bundleReady = await fs.access(BUNDLE_PATH).then(
    () => true,
    () => false,
  );
  const shared = opts.taskQueue ?? taskQueue();
  const own = ownQueue(shared);
  // Every activity checks its input first: anyone who reaches Temporal chooses it.
  const activities = withWorkerQueue(
    withInputChecks(
      { ...createActivities(activityDeps), ...createScheduleActivities(activityDeps), ...createPushActivities(activityDeps), ...createPullActivities(activityDeps) },
      activityDeps,
    ),
    own,
  );
  const common = {
    connection,
    namespace: opts.target.namespace,
    ...(opts.identity ? { identity: opts.identity } : {}), // an explicit undefined is rejected
    activities,
    // RUN output reaches clients through heartbeat details: send them at least every second.
    maxHeartbeatThrottleInterval: '1 second',
    defaultHeartbeatThrottleInterval: '1 second',
  } as const;
  const worker = await Worker.create({
    ...common,
    taskQueue: shared,
    ...(bundleReady ? { workflowBundle: { codePath: BUNDLE_PATH } } : { workflowsPath: WORKFLOWS_PATH }),
  });
  // Activities only: workflow tasks go to the shared queue (and Temporal's own sticky cache).
  const mine = await Worker.create({ ...common, taskQueue: own });
  return { worker: pair(worker, mine, own), connection };
}

/** Two workers as one: each stops when the other does, so a failed one takes its twin down. */
function pair(a: Worker, b: Worker, ownQueue: string): StrataWorker {
  const stop = (w: Worker) => {
    if (w.getState() === 'RUNNING') w.shutdown();
  };
  return {
    ownQueue,
    async run() {
      const runs = [a, b].map((w, i) =>
        w.run().finally(() => {
          stop([a, b][1 - i]!);
        }),
      );
      const settled = await Promise.allSettled(runs);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
    shutdown() {
      stop(a);
      stop(b);
    },
  };
}

const RECLAIM_MS = 5 * 60_000;

/** STRATA_CACHE_MAX (e.g. `10GB`): the size the store is trimmed to after each build. */
function cacheMaxFromEnv(): number | undefined {
  const v = process.env.STRATA_CACHE_MAX;
  if (v === undefined || v === '') return undefined;
  const bytes = parseSize(v);
  if (bytes === undefined) throw new Error(`STRATA_CACHE_MAX: not a size: ${JSON.stringify(v)} (e.g. 10GB, 500MB)`);
  return bytes;
}

/** Removes what dead workers left in the store (mounts, runc containers, staging, temp files). */
async function reclaimLeftovers(store: Store, say: boolean): Promise<void> {
  try {
    const removed = await reclaimDeadOwners(store.root);
    if (say && removed.length > 0) process.stderr.write(`strata worker: removed ${removed.length} leftovers of dead processes from the store\n`);
  } catch (err) {
    process.stderr.write(`[worker WARN] reclaiming dead processes' leftovers: ${(err as Error).message}\n`);
  }
}
