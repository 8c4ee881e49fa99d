// The store's garbage collector, behind `strata builder prune` and the automatic trim after a
// build (STRATA_CACHE_MAX). It removes instruction cache entries as the policy says, then what
// nothing refers to any more (engine/store/refs.ts is the rule): layers, unpacked contexts,
// blobs and build logs; RUN cache mounts and intermediate images with -a (or, for mounts, when
// unused since the filter), and the step images' time records no kept entry needs. Never a layer
// an image, a lease (a running build) or a mount holds.
//
// Removal follows one order, so a build running alongside loses nothing it holds: entries go
// first; then the leases and mounts are read again; then each layer goes under its lock (a
// commit that finds the same layer stored takes that lock too), unless it is held now or was
// touched since the inventory. A look-up leases an entry's layer before it checks that the
// entry is still there, so either it sees the entry gone (a miss) or this sees its lease.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { digestHex, type Digest } from '../digest.js';
import { ANNOTATION_INTERMEDIATE } from '../image/types.js';
import { heldLayers, leaseRefs, mountedLayers } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { dropCacheEntry } from './entries.js';
import { blobReferenced, entryHolds, storedWhileOpen, takeInventory, type Inventory } from './inventory.js';

export interface CollectPolicy {
  /**
   * Which cache entries may go: `all`, or `unused`: entries whose layer no image uses (docker's
   * dangling build cache); entries of steps that made no layer hold nothing and stay.
   */
  entries: 'all' | 'unused';
  /** Only what was last used before this time (ms since the epoch): `--filter until=`. */
  usedBefore?: number;
  /**
   * Stop once the store's layers, blobs, contexts and logs take at most `storeBytes`: entries
   * then go least recently used first, and only as many as needed. Without it, everything the
   * policy allows goes.
   */
  storeBytes?: number;
  /** Like `storeBytes`, for what is not an image's (`--keep-storage`): the build cache's size. */
  cacheBytes?: number;
}

export type RemovedKind = 'entry' | 'layer' | 'context' | 'blob' | 'logs' | 'mount' | 'record' | 'image';

export interface CollectReport {
  removed: { kind: RemovedKind; id: string; bytes: number }[];
  reclaimed: number;
  /** The store's layers, blobs, contexts and logs afterwards, in bytes. */
  storeBytes: number;
}

/** Runs one collection. Another collection on the same store at the same time is waited for. */
export async function collectStore(store: Store, policy: CollectPolicy, opts: { wait?: boolean } = {}): Promise<CollectReport | undefined> {
  await fs.mkdir(path.join(store.root, 'cache'), { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(path.join(store.root, 'cache'), {
      lockfilePath: path.join(store.root, 'cache', 'gc.lock'),
      retries: opts.wait === false ? 0 : { retries: 600, minTimeout: 100, maxTimeout: 1000 },
      stale: 60_000,
    });
  } catch (err) {
    if (opts.wait === false && (err as { code?: string }).code === 'ELOCKED') return undefined; // one is running: it will do
    throw err;
  }
  try {
    const inv = await takeInventory(store);
    return await apply(store, inv, plan(inv, policy));
  } finally {
    await release();
  }
}

/** The store's layers, blobs, contexts and logs, in bytes. */
export function storeBytes(inv: Inventory): number {
  let total = 0;
  for (const l of inv.layers.values()) total += l.size;
  for (const b of inv.blobs.values()) total += b.bytes;
  for (const c of inv.contexts.values()) total += c.bytes;
  for (const l of inv.logs.values()) total += l.bytes;
  for (const m of inv.mounts.values()) total += m.bytes;
  for (const r of inv.records.values()) total += r.bytes;
  return total;
}

/** What images hold: their layers (whole chains) and their manifests, configs and layer blobs. */
export function imageBytes(inv: Inventory): number {
  let total = 0;
  const layers = new Set<Digest>();
  for (const c of inv.images.layers.keys()) for (let cur: Digest | undefined = c; cur && !layers.has(cur); cur = inv.layers.get(cur)?.parent) layers.add(cur);
  for (const c of layers) total += inv.layers.get(c)?.size ?? 0;
  for (const b of inv.images.blobs) total += inv.blobs.get(b)?.bytes ?? 0;
  return total;
}

interface Plan {
  entries: Digest[];
  layers: Digest[];
  contexts: Digest[];
  blobs: Digest[];
  logs: string[];
  mounts: string[];
  records: string[];
  /** Intermediate images taken out of index.json. */
  intermediates: Digest[];
  bytesAfter: number;
}

/**
 * A step image's time record outlives the cache entries it serves by this much at most: it is
 * read (and touched) when the entry is used, in the same build, minutes apart at most.
 */
const RECORD_MARGIN_MS = 3600_000;

/** Decides what goes, measuring as it goes; removes nothing. */
export function plan(inv: Inventory, policy: CollectPolicy): Plan {
  const old = (usedAt: number) => policy.usedBefore === undefined || usedAt < policy.usedBefore;
  const out: Plan = { entries: [], layers: [], contexts: [], blobs: [], logs: [], mounts: [], records: [], intermediates: [], bytesAfter: storeBytes(inv) };
  const limit = policy.storeBytes ?? (policy.cacheBytes !== undefined ? policy.cacheBytes + imageBytes(inv) : undefined);
  const over = () => limit !== undefined && out.bytesAfter > limit;
  const unlimited = limit === undefined;
  const holds = entryHolds(inv, inv.entries);
  const goneLayers = new Set<Digest>();
  const removable = (c: Digest) => !goneLayers.has(c) && !inv.held.has(c) && (holds.get(c) ?? 0) === 0 && !storedWhileOpen(inv, inv.layers.get(c)!.storedAt);
  const dropLayer = (c: Digest) => {
    goneLayers.add(c);
    out.layers.push(c);
    out.bytesAfter -= inv.layers.get(c)!.size;
  };

  // Garbage first: layers nothing holds (a failed build's, an untagged image's once removed).
  for (const c of inv.layers.keys()) if (removable(c) && old(inv.layers.get(c)!.storedAt)) dropLayer(c);

  // Entries, least recently used first.
  const candidates = inv.entries
    .filter((e) => old(e.usedAt))
    .filter((e) => policy.entries === 'all' || (e.layer !== undefined && !inv.images.layers.has(e.layer.chainId)))
    .sort((a, b) => a.usedAt - b.usedAt);
  for (const e of candidates) {
    if (!unlimited && !over()) break;
    out.entries.push(e.key);
    if (!e.layer) continue;
    const chain: Digest[] = [];
    for (let c: Digest | undefined = e.layer.chainId; c && !chain.includes(c); c = inv.layers.get(c)?.parent) chain.push(c);
    for (const c of chain) holds.set(c, (holds.get(c) ?? 1) - 1);
    for (const c of chain) if (inv.layers.has(c) && removable(c)) dropLayer(c);
  }

  // With -a (all of it, no filter, no budget), intermediate images go too: they are build cache
  // (docker's classic builder keeps them as images; BuildKit has none). A running build's stay.
  let blobInv = inv;
  if (policy.entries === 'all' && policy.usedBefore === undefined && unlimited) {
    const leasedChain = (m: Digest) => [...inv.images.intermediate].some(([c, ms]) => ms.includes(m) && inv.leases.layers.has(c));
    for (const m of inv.images.intermediateOnly) {
      if (inv.leases.blobs.has(m) || storedWhileOpen(inv, inv.blobs.get(m)?.usedAt ?? 0) || leasedChain(m)) continue;
      out.intermediates.push(m);
    }
    const dropped = new Set(out.intermediates);
    const named = new Set<Digest>();
    for (const [m, blobs] of inv.images.blobsOf) if (!dropped.has(m)) for (const b of blobs) named.add(b);
    blobInv = { ...inv, images: { ...inv.images, blobs: named } };
  }

  // Unpacked contexts and blobs nobody leases, pins or (for blobs) names; a context's blob
  // goes with it unless something still names it.
  const keptLayerBlobs = new Set<Digest>();
  for (const l of inv.layers.values()) if (l.blob && !goneLayers.has(l.chain)) keptLayerBlobs.add(l.blob);
  for (const [d, item] of inv.contexts) {
    if (!unlimited && !over()) break;
    if (inv.leases.blobs.has(d) || inv.pins.has(d) || storedWhileOpen(inv, item.usedAt) || !old(item.usedAt)) continue;
    out.contexts.push(d);
    out.bytesAfter -= item.bytes;
  }
  for (const [d, item] of inv.blobs) {
    if (!unlimited && !over()) break;
    if (blobReferenced(blobInv, d, keptLayerBlobs) || storedWhileOpen(inv, item.usedAt) || !old(item.usedAt)) continue;
    out.blobs.push(d);
    out.bytesAfter -= item.bytes;
  }
  // Logs of builds that hold no lease (they ended), oldest first.
  for (const [build, item] of [...inv.logs].sort((a, b) => a[1].usedAt - b[1].usedAt)) {
    if (!unlimited && !over()) break;
    if (inv.leases.builds.has(build) || !old(item.usedAt)) continue;
    out.logs.push(build);
    out.bytesAfter -= item.bytes;
  }
  // RUN cache mounts, least recently used first: with -a, when unused since the filter, or to
  // meet a budget (BuildKit counts them as build cache too). One a running build used is kept.
  if (policy.entries === 'all' || policy.usedBefore !== undefined || !unlimited) {
    for (const [hex, item] of [...inv.mounts].sort((a, b) => a[1].usedAt - b[1].usedAt)) {
      if (!unlimited && !over()) break;
      if (storedWhileOpen(inv, item.usedAt) || !old(item.usedAt)) continue;
      out.mounts.push(hex);
      out.bytesAfter -= item.bytes;
    }
  }
  // Step images' time records no kept entry needs: older than every kept entry's last use.
  const dropped = new Set(out.entries);
  const kept = inv.entries.filter((e) => !dropped.has(e.key));
  const needed = kept.length === 0 ? Infinity : Math.min(...kept.map((e) => e.usedAt)) - RECORD_MARGIN_MS;
  for (const [name, item] of inv.records) {
    if (item.usedAt >= needed || storedWhileOpen(inv, item.usedAt)) continue;
    out.records.push(name);
    out.bytesAfter -= item.bytes;
  }
  return out;
}

async function apply(store: Store, inv: Inventory, p: Plan): Promise<CollectReport> {
  const report: CollectReport = { removed: [], reclaimed: 0, storeBytes: p.bytesAfter };
  const removed = (kind: RemovedKind, id: string, bytes: number) => {
    report.removed.push({ kind, id, bytes });
    report.reclaimed += bytes;
  };
  const entryBytes = new Map(inv.entries.map((e) => [e.key, e.bytes]));
  for (const key of p.entries) {
    await dropCacheEntry(store, key);
    removed('entry', digestHex(key), entryBytes.get(key) ?? 0);
  }
  // Who holds what now: a build may have started, or leased a layer, since the inventory.
  const leases = await leaseRefs(store, inv.layers);
  const fresh = { ...inv, leases };
  const held = heldLayers(store, inv.layers, inv.images, leases, await mountedLayers());
  let skipped = 0;
  const goneLayers: Digest[] = [];
  for (const c of p.layers) {
    const layer = inv.layers.get(c)!;
    if (held.has(c) || storedWhileOpen(fresh, layer.storedAt)) {
      skipped += layer.size;
      continue;
    }
    if (await store.removeLayer(c, layer.storedAt)) {
      removed('layer', digestHex(c), layer.size);
      goneLayers.push(c);
    } else skipped += layer.size;
  }
  await dropIntermediates(store, inv, goneLayers, p.intermediates);
  for (const m of p.intermediates) removed('image', digestHex(m), 0);
  for (const d of p.contexts) {
    if (leases.blobs.has(d)) continue;
    // Its checksums stay while its blob does: the context unpacks to the same files again.
    await removeTree(store, path.join(store.root, 'contexts', digestHex(d)));
    removed('context', digestHex(d), inv.contexts.get(d)!.bytes);
  }
  for (const d of p.blobs) {
    const item = inv.blobs.get(d)!;
    if (leases.blobs.has(d)) continue;
    const st = await fs.stat(store.blobPath(d)).catch(() => undefined);
    if (!st || st.mtimeMs !== item.usedAt) continue; // written again meanwhile: in use
    await fs.rm(store.blobPath(d), { force: true });
    await fs.rm(path.join(store.root, 'cache', 'sums', digestHex(d)), { recursive: true, force: true });
    // A context and its blob are one object to the user: one row.
    const asContext = report.removed.find((r) => r.kind === 'context' && r.id === digestHex(d));
    if (asContext) {
      asContext.bytes += item.bytes;
      report.reclaimed += item.bytes;
    } else removed('blob', digestHex(d), item.bytes);
  }
  for (const build of p.logs) {
    if (leases.builds.has(build)) continue;
    await removeTree(store, path.join(store.root, 'logs', build));
    removed('logs', build, inv.logs.get(build)!.bytes);
  }
  for (const hex of p.mounts) {
    const dir = path.join(store.root, 'cache', 'mounts', hex);
    const item = inv.mounts.get(hex)!;
    // Used since the inventory (a step touches it as it mounts it), or locked by a running step.
    const st = await fs.stat(dir).catch(() => undefined);
    if (
      !st ||
      st.mtimeMs !== item.usedAt ||
      (await fs.stat(`${dir}.lock`).then(
        () => true,
        () => false,
      ))
    )
      continue;
    await removeTree(store, dir);
    removed('mount', hex, item.bytes);
  }
  for (const name of p.records) {
    const file = path.join(store.root, 'cache', 'images', name);
    const st = await fs.stat(file).catch(() => undefined);
    if (!st || st.mtimeMs !== inv.records.get(name)!.usedAt) continue;
    await fs.rm(file, { force: true });
    removed('record', name.replace(/\.json$/, ''), st.size);
  }
  // Checksums of contexts whose blob went another way (an image removal, a crash).
  for (const hex of await fs.readdir(path.join(store.root, 'cache', 'sums')).catch(() => [] as string[])) {
    if (/^[0-9a-f]{64}$/.test(hex) && !(await store.hasBlob(`sha256:${hex}` as Digest))) await fs.rm(path.join(store.root, 'cache', 'sums', hex), { recursive: true, force: true });
  }
  report.storeBytes += skipped;
  return report;
}

/**
 * Intermediate images are build cache: they do not hold their layers from the GC, and go
 * from index.json with the first of their layers it removes (their blobs are then garbage for
 * the next collection). A running build's are safe: its leases hold its layers.
 */
async function dropIntermediates(store: Store, inv: Inventory, gone: Digest[], more: Digest[] = []): Promise<void> {
  const manifests = new Set([...gone.flatMap((c) => inv.images.intermediate.get(c) ?? []), ...more]);
  if (manifests.size === 0) return;
  await store.updateIndex((index) => {
    index.manifests = index.manifests.filter((d) => !(manifests.has(d.digest) && d.annotations?.[ANNOTATION_INTERMEDIATE]));
  });
}

/** Renames `dir` into tmp/ (atomic, so it is gone at once), then removes it there. */
async function removeTree(store: Store, dir: string): Promise<void> {
  const trash = await store.makeTempDir('removed');
  try {
    await fs.rename(dir, path.join(trash, 'x')).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  } finally {
    await fs.rm(trash, { recursive: true, force: true });
  }
}
