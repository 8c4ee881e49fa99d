// `strata worker`: runs builds from the task queue until stopped.
import { Store } from '../../engine/store/store.js';
import { ensureTemporal } from '../../worker/temporal.js';
import { describeRights, workerRights } from '../../worker/rights.js';
import { createWorker, taskQueue } from '../../worker/worker.js';
import { parseEntitlements } from '../options.js';

export async function runWorker(opts: { denyEntitlement?: string[]; allowPush?: boolean } = {}): Promise<void> {
  const deniedEntitlements = parseEntitlements(opts.denyEntitlement ?? [], '--deny-entitlement');
  const store = await Store.open();
  const target = await ensureTemporal(store.root, (m) => console.error(m));
  const rights = await workerRights(opts);
  const { worker, connection } = await createWorker({ target, store, rights, deniedEntitlements });
  console.error(`strata worker: polling task queue "${taskQueue()}" on ${target.address} (store ${store.root}; ${describeRights(rights)})`);
  // Graceful first: running activities finish or are cancelled. A worker whose server is
  // gone would wait on its polls forever, so it leaves after a grace period, or at once
  // on a second signal.
  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(130);
    stopping = true;
    worker.shutdown();
    setTimeout(() => process.exit(1), Number(process.env.STRATA_WORKER_SHUTDOWN_GRACE_MS || 20_000)).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await worker.run();
  await connection.close();
}
