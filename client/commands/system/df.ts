// `strata system df`: what the store takes, docker's table: images and the build cache, with
// what `strata builder prune -a` (build cache) or removing images could reclaim.
import { takeInventory } from '../../../engine/cache/inventory.js';
import { storeUsage, type UsageRow } from '../../../engine/cache/usage.js';
import { Store } from '../../../engine/store/store.js';
import { formatSize, printTable } from '../../format.js';

export async function runSystemDf(): Promise<void> {
  const store = await Store.open();
  const usage = storeUsage(await takeInventory(store));
  const row = (type: string, u: UsageRow) => {
    const pct = u.bytes > 0 ? ` (${Math.round((u.reclaimable / u.bytes) * 100)}%)` : '';
    return [type, String(u.total), String(u.active), formatSize(u.bytes), `${formatSize(u.reclaimable)}${pct}`];
  };
  printTable([['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'], row('Images', usage.images), row('Build Cache', usage.buildCache)]);
}
