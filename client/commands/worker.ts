// `strata worker`: runs builds from the task queue until stopped — in the terminal, or as the
// store's background worker (`--background`, how `strata build` and `strata worker start` run
// it: detached, logging to $STRATA_HOME/worker.log). Either records itself in the store, so
// clients on this machine know it serves the queue (worker/registry.ts).
import { Store } from '../../engine/store/store.js';
import { taskQueue } from '../../worker/queue.js';
import { registerWorker } from '../../worker/registry.js';
import { ensureTemporal } from '../../worker/temporal.js';
import { describeRights, workerRights, type WorkerRights } from '../../worker/rights.js';
import { createWorker } from '../../worker/worker.js';
import { serveBuilds } from '../buildServer.js';
import { parseEntitlements } from '../options.js';

export async function runWorker(opts: { denyEntitlement?: string[]; allowPush?: boolean; background?: boolean } = {}): Promise<void> {
  const deniedEntitlements = parseEntitlements(opts.denyEntitlement ?? [], '--deny-entitlement');
  const store = await Store.open();
  const target = await ensureTemporal(store.root, (m) => console.error(m));
  // The background worker serves whoever reaches the queue, started by a build, not by an
  // operator who chose what to open: it gets no rights, as main's in-process worker had none.
  const rights: WorkerRights = opts.background ? {} : await workerRights(opts);
  const { worker, connection } = await createWorker({ target, store, rights, deniedEntitlements });
  // The background worker takes builds from this machine's clients on a socket too (client/buildServer.ts).
  const server = opts.background
    ? await serveBuilds(store, target, taskQueue(), (m) => console.error(m)).catch((e: Error) => (console.error(`strata worker: no build socket: ${e.message}`), undefined))
    : undefined;
  const unregister = await registerWorker(store.root, target, taskQueue(), { background: !!opts.background, socket: server?.path });
  const started = opts.background ? `${new Date().toISOString()} background worker (pid ${process.pid}) ` : '';
  console.error(
    `${started}strata worker: polling task queue "${taskQueue()}" (and its own "${worker.ownQueue}") on ${target.address} (store ${store.root}; ${describeRights(rights)})`,
  );
  // Graceful first: running activities finish or are cancelled. A worker whose server is
  // gone would wait on its polls forever, so it leaves after a grace period, or at once
  // on a second signal.
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(130);
    stopping = true;
    // No client may count on it from now on.
    unregister();
    void server?.close();
    if (opts.background) console.error(`${new Date().toISOString()} background worker (pid ${process.pid}) stopping`);
    worker.shutdown();
    setTimeout(() => process.exit(1), Number(process.env.STRATA_WORKER_SHUTDOWN_GRACE_MS || 20_000)).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await worker.run();
  unregister();
  await server?.close();
  await connection.close();
}
