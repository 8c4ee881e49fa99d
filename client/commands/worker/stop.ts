// `strata worker stop [--all]`: stops the store's background worker of this task queue (all
// of them with --all). Workers run in a terminal are left to their terminal.
import { Store } from '../../../engine/store/store.js';
import { taskQueue } from '../../../worker/queue.js';
import { liveWorkers, stopWorkers } from '../../../worker/registry.js';
import { configuredTarget } from '../../../worker/temporal.js';

export async function runWorkerStop(opts: { all?: boolean }): Promise<void> {
  const store = await Store.open();
  const target = configuredTarget();
  const queue = taskQueue();
  const mine = (await liveWorkers(store.root)).filter((r) => r.background && (opts.all || (r.address === target.address && r.namespace === target.namespace && r.queue === queue)));
  if (mine.length === 0) {
    console.log(opts.all ? 'No background worker was running' : `No background worker was running for task queue "${queue}"`);
    return;
  }
  await stopWorkers(store.root, mine);
  for (const r of mine) console.log(`Worker stopped: pid ${r.pid}, task queue "${r.queue}"`);
}
