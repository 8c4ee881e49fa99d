// `strata worker status`: the workers of this machine that serve the store, and whether one
// serves this task queue (exit 3 when none does).
import { readFileSync } from 'node:fs';
import { Store } from '../../../engine/store/store.js';
import { taskQueue } from '../../../worker/queue.js';
import { liveWorkers } from '../../../worker/registry.js';
import { configuredTarget } from '../../../worker/temporal.js';
import { formatSize } from '../../format.js';

export async function runWorkerStatus(): Promise<number> {
  const store = await Store.open();
  const target = configuredTarget();
  const queue = taskQueue();
  const all = await liveWorkers(store.root);
  for (const r of all) {
    const kind = r.background ? `background, log ${r.log}` : 'terminal';
    console.log(`pid ${r.pid}: task queue "${r.queue}" on ${r.address} (${kind}), since ${r.startedAt}, memory ${memory(r.pid)}`);
  }
  const serving = all.some((r) => r.address === target.address && r.namespace === target.namespace && r.queue === queue);
  if (!serving) console.log(`No worker of this machine serves task queue "${queue}" on ${target.address} (strata worker start, or the next build, starts one)`);
  return serving ? 0 : 3;
}

/** Resident memory now and at its peak (VmRSS, VmHWM). */
function memory(pid: number): string {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return `${formatSize(kb('VmRSS'))} (peak ${formatSize(kb('VmHWM'))})`;
  } catch {
    return 'unknown';
  }
}
