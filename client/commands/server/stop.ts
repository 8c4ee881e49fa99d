// `strata server stop`: stops the embedded server this store started, and first the store's
// background workers that poll it (without their server they would wait on their polls forever).
import { Store } from '../../../engine/store/store.js';
import { liveWorkers, stopWorkers } from '../../../worker/registry.js';
import { configuredTarget, stopServer } from '../../../worker/temporal.js';

export async function runServerStop(): Promise<void> {
  const store = await Store.open();
  const target = configuredTarget();
  if (target.embedded) {
    const workers = (await liveWorkers(store.root)).filter((r) => r.background && r.address === target.address);
    await stopWorkers(store.root, workers);
    for (const r of workers) console.log(`Worker stopped: pid ${r.pid}, task queue "${r.queue}"`);
  }
  console.log((await stopServer(store.root)) ? 'Temporal server stopped' : 'Temporal server was not running');
}
