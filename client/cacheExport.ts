// `strata build --cache-to type=registry,ref=REGISTRY/REPO`: after the build succeeds, this
// client pushes the cache entries the build used or made, with their layers, to the repository
// in the remote store's layout (engine/remote/remoteStore.ts), with the user's own credentials
// as --push does. The build's keys are read from its history (each lookupCache result), so the
// workflow is unchanged; the entries come from the store the client shares with its workers
// (or STRATA_REMOTE), and a hit that came from a --cache-from repository, which is in no index,
// from the look-up's own result.
import type { Client } from '@temporalio/client';
import { readCacheEntry, type CacheEntry } from '../engine/cache/entries.js';
import type { Digest } from '../engine/digest.js';
import { RemoteStore, remoteFromEnv } from '../engine/remote/remoteStore.js';
import type { Store } from '../engine/store/store.js';
import type { CacheLookupResult } from '../workflows/types.js';

/** The step keys the build's look-ups gave, in order, with what each hit (undefined: it ran). */
export async function buildCacheKeys(client: Client, workflowId: string): Promise<Map<Digest, CacheLookupResult['steps'][number]['hit']>> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const converter = client.options.loadedDataConverter.payloadConverter;
  const lookups = new Set<string>();
  const keys = new Map<Digest, CacheLookupResult['steps'][number]['hit']>();
  for (const e of history.events ?? []) {
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'lookupCache') lookups.add(String(e.eventId));
    const done = e.activityTaskCompletedEventAttributes;
    const payload = done?.result?.payloads?.[0];
    if (!done || !payload || !lookups.has(String(done.scheduledEventId))) continue;
    for (const s of converter.fromPayload<CacheLookupResult>(payload).steps ?? []) if (!keys.get(s.key)) keys.set(s.key, s.hit);
  }
  return keys;
}

/** Pushes the entries of `keys` (those that have one: filesystem steps) to `repo`; returns how many. */
export async function exportCache(store: Store, keys: Map<Digest, CacheLookupResult['steps'][number]['hit']>, repo: string): Promise<number> {
  const to = new RemoteStore(repo);
  const from = remoteFromEnv();
  let n = 0;
  for (const [key, hit] of keys) {
    const entry: CacheEntry | undefined = (await readCacheEntry(store, key)) ?? (hit ? { key, ...hit } : undefined);
    if (!entry) continue;
    const top = entry.layer?.chainId;
    // Made on workers that share only STRATA_REMOTE with this client: fetched (verified) first.
    if (top && !(await store.hasLayer(top))) {
      if (!from) continue;
      await from.getLayers(store, [top]);
    }
    await to.putChains(store, [top]);
    await to.putEntry(store, entry);
    n++;
  }
  return n;
}
