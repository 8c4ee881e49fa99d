// Instruction cache entries: $STRATA_HOME/cache/steps/<key hex>.json, one per filesystem step,
// naming the layer the step made (none when it changed nothing) and its history row. Written
// atomically; verified on use (the layer must be stored and stack on the parent the build has,
// else the entry is dropped and the step misses). The file's mtime is its last use, which the
// store's GC trims by (least recently used first). Shared by every worker on the store.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { chainId, digestHex, isDigest, type Digest } from '../digest.js';
import { exists, writeFileAtomic } from '../fsutil/atomic.js';
import type { HistoryEntry, LayerRef } from '../image/types.js';
import type { Store } from '../store/store.js';

export interface CacheEntry {
  key: Digest;
  /** The step's layer; absent when the step changed nothing (an empty_layer history row). */
  layer?: LayerRef;
  history: HistoryEntry;
}

export function cacheStepsDir(store: Store): string {
  return path.join(store.root, 'cache', 'steps');
}

function entryPath(store: Store, key: Digest): string {
  return path.join(cacheStepsDir(store), `${digestHex(key)}.json`);
}

/**
 * Records what the step keyed `key` made, unless the key already names a layer that is still
 * stored: a step run again under `--no-cache` (or `--no-cache-filter`) then leaves the entry
 * of the builds before it. Otherwise removing the no-cache build's image would take the only
 * layer the entry names, and every later build would miss, though the images built before
 * still hold a whole chain of hits — docker's classic builder falls back to those older
 * images, and so does this. Idempotent.
 */
export async function writeCacheEntry(store: Store, key: Digest, result: { layer?: LayerRef; history: HistoryEntry }): Promise<void> {
  const existing = await readCacheEntry(store, key);
  if (existing && (!existing.layer || (await store.hasLayer(existing.layer.chainId)))) return;
  const entry: CacheEntry = { key, ...(result.layer ? { layer: result.layer } : {}), history: result.history };
  await fs.mkdir(cacheStepsDir(store), { recursive: true });
  await writeFileAtomic(entryPath(store, key), JSON.stringify(entry));
}

/** The entry of `key` as stored, or undefined (absent, or unreadable: then it is dropped). */
export async function readCacheEntry(store: Store, key: Digest): Promise<CacheEntry | undefined> {
  let text: string;
  try {
    text = await fs.readFile(entryPath(store, key), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const entry = parseEntry(text);
  if (!entry || entry.key !== key) {
    await dropCacheEntry(store, key);
    return undefined;
  }
  return entry;
}

/**
 * The entry of `key` when it can serve a build whose state's top layer is `parentTop`: its
 * layer is stored and is the one the step makes on that parent. A stale entry (its layer gone,
 * or made on another parent: the steps before ran again and gave other layers) is dropped.
 * A hit counts as a use (the entry's mtime). `hold` leases the layer before its check.
 */
export async function usableCacheEntry(
  store: Store,
  key: Digest,
  parentTop: Digest | undefined,
  hold: (layers: Digest[]) => Promise<void> = async () => undefined,
): Promise<CacheEntry | undefined> {
  const entry = await readCacheEntry(store, key);
  if (!entry) return undefined;
  if (entry.layer) {
    const fits = entry.layer.chainId === chainId(parentTop, entry.layer.diffId);
    if (!fits) return undefined; // right for another parent: keep it for builds on that one
    // Held, then checked: the GC removes an entry before it reads the leases and then removes
    // layers, so an entry still there after the hold means the GC will see the hold.
    await hold([entry.layer.chainId]);
    if (!(await exists(entryPath(store, key)))) return undefined;
    if (!(await store.hasLayer(entry.layer.chainId))) {
      await dropCacheEntry(store, key);
      return undefined;
    }
  }
  const now = new Date();
  await fs.utimes(entryPath(store, key), now, now).catch(() => undefined);
  return entry;
}

/** Idempotent. */
export async function dropCacheEntry(store: Store, key: Digest): Promise<void> {
  await fs.rm(entryPath(store, key), { force: true });
}

/** Every entry with its last use; unreadable files are skipped. */
export async function listCacheEntries(store: Store): Promise<(CacheEntry & { usedAt: number; bytes: number })[]> {
  const dir = cacheStepsDir(store);
  const out: (CacheEntry & { usedAt: number; bytes: number })[] = [];
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}\.json$/.test(name)) continue;
    const file = path.join(dir, name);
    const [text, st] = await Promise.all([fs.readFile(file, 'utf8').catch(() => undefined), fs.stat(file).catch(() => undefined)]);
    const entry = text === undefined ? undefined : parseEntry(text);
    if (!entry || !st || digestHex(entry.key) !== name.slice(0, 64)) continue;
    out.push({ ...entry, usedAt: st.mtimeMs, bytes: st.size });
  }
  return out;
}

/** An entry file's content, checked: another process (or a bad disk) may have written it. */
function parseEntry(text: string): CacheEntry | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  const e = v as Partial<CacheEntry> | null;
  if (!e || typeof e !== 'object' || typeof e.key !== 'string' || !isDigest(e.key)) return undefined;
  if (!e.history || typeof e.history !== 'object') return undefined;
  if (e.layer !== undefined) {
    const l = e.layer as Partial<LayerRef>;
    if (typeof l.chainId !== 'string' || !isDigest(l.chainId) || typeof l.diffId !== 'string' || !isDigest(l.diffId)) return undefined;
  }
  return e as CacheEntry;
}
