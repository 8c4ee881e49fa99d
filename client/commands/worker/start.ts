// `strata worker start`: the store's background worker for this task queue, started unless a
// worker of this machine serves the queue already (what `strata build` does when none does).
import { Store } from '../../../engine/store/store.js';
import { taskQueue } from '../../../worker/queue.js';
import { startBackgroundWorker } from '../../../worker/registry.js';
import { ensureTemporal } from '../../../worker/temporal.js';

export async function runWorkerStart(): Promise<void> {
  const store = await Store.open();
  const target = await ensureTemporal(store.root, (m) => console.error(m));
  const rec = await startBackgroundWorker(store.root, target, taskQueue(), (m) => console.error(m));
  console.log(`Worker running: pid ${rec.pid}, task queue "${rec.queue}" on ${rec.address}${rec.background ? `, in the background (log ${rec.log})` : ', in a terminal'}`);
}
