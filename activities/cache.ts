// The instruction cache's side of the activities: the look-up, the lease every step holds
// while it runs (so the store's GC keeps what it reads and makes), recording a step's result
// under its key, and what follows a commit (the build's leases released, the store trimmed to
// STRATA_CACHE_MAX).
import { Context } from '@temporalio/activity';
import { lookupSteps } from '../engine/cache/lookup.js';
import { usableCacheEntry, writeCacheEntry, type CacheEntry } from '../engine/cache/entries.js';
import { collectStore } from '../engine/cache/gc.js';
import { isDigest, type Digest } from '../engine/digest.js';
import { NotFoundError, UserInputError } from '../engine/errors.js';
import type { LayerRef, HistoryEntry } from '../engine/image/types.js';
import { openLease, releaseBuildLeases } from '../engine/store/leases.js';
import type { Store } from '../engine/store/store.js';
import type { RemoteStore } from '../engine/remote/remoteStore.js';
import type { NetworkMode } from '../engine/runtime/network.js';
import type { CacheLookupInput, CacheLookupResult } from '../workflows/types.js';

/** The build an activity works for: its workflow ID. */
export function buildIdOf(): string {
  return Context.current().info.workflowExecution?.workflowId ?? 'standalone';
}

/** A cache key from a workflow input: a digest, or nothing. */
function checkedKey(key: unknown): Digest | undefined {
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || !isDigest(key)) throw new UserInputError('CACHE_KEY_INVALID', `cache: key must be sha256:<hex>, got ${JSON.stringify(key)}`);
  return key;
}

export async function lookupCache(
  store: Store,
  input: CacheLookupInput,
  opts: { allowFileGit?: boolean; network: NetworkMode; remote?: RemoteStore; cacheFrom: (name: string) => RemoteStore; contextOf: (digest: Digest) => Promise<string> },
): Promise<CacheLookupResult> {
  const remote = opts.remote;
  const from = (input.cacheFrom ?? []).map((name) => opts.cacheFrom(name));
  if (remote && input.start.kind === 'base' && input.start.base.kind === 'image') await remote.getImage(store, input.start.base.manifestDigest);
  const lease = await openLease(store.root, buildIdOf(), { layers: [input.parentTop, ...(input.stageTops ?? []).map((t) => t.top)], blobs: [input.contextDigest] });
  try {
    return await lookupSteps(store, {
      start: input.start,
      parentTop: input.parentTop,
      steps: input.steps,
      contextDigest: input.contextDigest,
      contextDir: () => opts.contextOf(input.contextDigest),
      stageTops: new Map((input.stageTops ?? []).map((t) => [t.stage, t.top])),
      sourceDateEpoch: input.sourceDateEpoch,
      network: opts.network,
      useCache: input.useCache === true,
      allowFileGit: opts.allowFileGit,
      hold: (layers) => lease.add({ layers }),
      ...(remote || from.length > 0
        ? {
            fetchEntry: (key: Digest, top: Digest | undefined) => fetchEntry(store, { remote, from, hold: (layers) => lease.add({ layers }) }, key, top),
            prefetchEntries: (keys: Digest[]) => {
              remote?.prefetchCacheEntries(keys);
              for (const r of from) r.prefetchCacheEntries(keys);
            },
          }
        : {}),
    });
  } finally {
    await lease.close();
  }
}

/**
 * On a local miss, the entry of `key` for a state whose top is `top`: from the operator's remote
 * store (STRATA_REMOTE, trusted: written into the shared index), else from the build's
 * `--cache-from` repositories in order (the user's: the entry serves this look-up only and is
 * written nowhere; its layer, content-verified, is stored). A layer is stored only on its whole
 * chain: the parent first, then the entry's layer.
 */
async function fetchEntry(
  store: Store,
  where: { remote?: RemoteStore; from: RemoteStore[]; hold: (layers: Digest[]) => Promise<void> },
  key: Digest,
  top: Digest | undefined,
): Promise<CacheEntry | undefined> {
  if (where.remote) {
    await where.remote.getLayers(store, [top]);
    if (await where.remote.getCacheEntry(store, key, top)) {
      const entry = await usableCacheEntry(store, key, top, where.hold);
      if (entry) return entry;
    }
  }
  for (const r of where.from) {
    if (top && !(await store.hasLayer(top))) {
      try {
        await r.getLayers(store, [top]);
      } catch (err) {
        if (err instanceof NotFoundError) continue; // this repository lacks the parent: a miss here
        throw err;
      }
    }
    const entry = await r.fetchCacheEntry(store, key, top);
    if (!entry) continue;
    // Held, then checked, as a stored entry is (engine/cache/entries.ts usableCacheEntry).
    if (entry.layer) {
      await where.hold([entry.layer.chainId]);
      if (!(await store.hasLayer(entry.layer.chainId))) continue;
    }
    return entry;
  }
  return undefined;
}

/**
 * Runs a filesystem step under a lease on what it reads (`layers`, `blobs`) and what it makes,
 * and records its result under `cacheKey` when the workflow gave one.
 */
export async function holdingStep<R extends { layer?: LayerRef; history: HistoryEntry }>(
  store: Store,
  what: { layers: (Digest | undefined)[]; blobs: (Digest | undefined)[]; cacheKey?: unknown; remote?: RemoteStore },
  run: () => Promise<R>,
): Promise<R> {
  const key = checkedKey(what.cacheKey);
  const lease = await openLease(store.root, buildIdOf(), { layers: what.layers, blobs: what.blobs });
  try {
    // The layers the step reads, fetched when this machine lacks them (blobs: when read).
    await what.remote?.getLayers(store, what.layers);
    const result = await run();
    if (result.layer) await lease.add({ layers: [result.layer.chainId] });
    if (key) await writeCacheEntry(store, key, result);
    // Durable before the step returns: the next step may run on another machine.
    if (result.layer) await what.remote?.putLayers(store, [result.layer.chainId]);
    if (key) await what.remote?.putCacheEntry(store, key);
    return result;
  } finally {
    await lease.close();
  }
}

/**
 * After a build's commit: its image holds its layers now, so its leases go; then, with a
 * budget, the store is trimmed to it. A trim that fails is logged, never the build's failure.
 */
export async function afterCommit(store: Store, cacheMax: number | undefined): Promise<void> {
  await releaseBuildLeases(store.root, buildIdOf());
  if (cacheMax === undefined) return;
  try {
    await collectStore(store, { entries: 'all', storeBytes: cacheMax }, { wait: false });
  } catch (err) {
    Context.current().log.warn('store GC failed', { error: (err as Error).message });
  }
}
