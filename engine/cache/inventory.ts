// What the store holds and who refers to it, taken in one pass for the GC, builder prune and
// system df: layers, instruction cache entries, blobs, unpacked contexts and build logs, with
// their sizes and last uses, and the references (engine/store/refs.ts) that keep them.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { asDigest, type Digest } from '../digest.js';
import { chainDown, heldLayers, imageRefs, leaseRefs, mountedLayers, pinnedBlobs, storedLayers, type ImageRefs, type LeaseRefs, type StoredLayer } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { listCacheEntries, type CacheEntry } from './entries.js';

/** A file or directory the GC may remove, with its size and last use. */
export interface Item {
  bytes: number;
  usedAt: number;
}

export interface Inventory {
  layers: Map<Digest, StoredLayer>;
  entries: (CacheEntry & Item)[];
  blobs: Map<Digest, Item>;
  /** Unpacked contexts (contexts/<hex>), by the digest of their blob. */
  contexts: Map<Digest, Item>;
  /** Build logs (logs/<build ID>), by build ID. */
  logs: Map<string, Item>;
  /** RUN --mount=type=cache directories (cache/mounts/<hex>), touched at each use. */
  mounts: Map<string, Item>;
  /** When an image was made for a step (cache/images/<hex>.json, engine/store/intermediate.ts), touched at each use. */
  records: Map<string, Item>;
  images: ImageRefs;
  leases: LeaseRefs;
  mounted: Set<string>;
  pins: Set<Digest>;
  /** Layers held by images, leases or mounts (whole chains). */
  held: Set<Digest>;
}

export async function takeInventory(store: Store): Promise<Inventory> {
  const layers = await storedLayers(store);
  const [entries, blobs, contexts, logs, mounts, records, images, leases, mounted, pins] = await Promise.all([
    listCacheEntries(store),
    blobItems(store),
    dirItems(path.join(store.root, 'contexts'), /^[0-9a-f]{64}$/),
    dirItems(path.join(store.root, 'logs'), /^[\w.-]+$/),
    dirItems(path.join(store.root, 'cache', 'mounts'), /^[0-9a-f]{64}$/),
    dirItems(path.join(store.root, 'cache', 'images'), /^[0-9a-f]{64}\.json$/, true),
    imageRefs(store),
    leaseRefs(store, layers),
    mountedLayers(),
    pinnedBlobs(store),
  ]);
  const contextsByDigest = new Map<Digest, Item>();
  for (const [hex, item] of contexts) {
    const digest = asDigest(`sha256:${hex}`);
    // An unpacked context is about as big as its tar: walking a large tree for its size would
    // cost more than the estimate is worth.
    contextsByDigest.set(digest, { ...item, bytes: blobs.get(digest)?.bytes ?? (await treeBytes(path.join(store.root, 'contexts', hex))) });
  }
  const logItems = new Map<string, Item>();
  for (const [build, item] of logs) logItems.set(build, { ...item, bytes: await treeBytes(path.join(store.root, 'logs', build)) });
  for (const [hex, item] of mounts) item.bytes = await treeBytes(path.join(store.root, 'cache', 'mounts', hex));
  return {
    layers,
    entries,
    blobs,
    contexts: contextsByDigest,
    logs: logItems,
    mounts,
    records,
    images,
    leases,
    mounted,
    pins,
    held: heldLayers(store, layers, images, leases, mounted),
  };
}

/** How many entries hold each layer (an entry holds its layer's whole chain). */
export function entryHolds(inv: Pick<Inventory, 'layers'>, entries: CacheEntry[]): Map<Digest, number> {
  const counts = new Map<Digest, number>();
  for (const e of entries) {
    if (!e.layer) continue;
    for (const c of chainDown(inv.layers, e.layer.chainId)) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  return counts;
}

/** Blobs nothing refers to: no image, lease, schedule or kept layer names them. */
export function blobReferenced(inv: Inventory, digest: Digest, keptLayerBlobs: Set<Digest>): boolean {
  return inv.images.blobs.has(digest) || inv.leases.blobs.has(digest) || inv.pins.has(digest) || keptLayerBlobs.has(digest);
}

/** Stored since an open lease began: someone is writing it and no record names it yet. */
export function storedWhileOpen(inv: Pick<Inventory, 'leases'>, at: number): boolean {
  return inv.leases.openSince !== undefined && at >= inv.leases.openSince;
}

async function blobItems(store: Store): Promise<Map<Digest, Item>> {
  const dir = path.join(store.root, 'blobs', 'sha256');
  const out = new Map<Digest, Item>();
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    const st = await fs.stat(path.join(dir, name)).catch(() => undefined);
    if (st) out.set(asDigest(`sha256:${name}`), { bytes: st.size, usedAt: st.mtimeMs });
  }
  return out;
}

/** The entries of `dir` named like `name`, with their mtime; with their size when `sized` (files). */
async function dirItems(dir: string, name: RegExp, sized = false): Promise<Map<string, Item>> {
  const out = new Map<string, Item>();
  for (const n of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!name.test(n)) continue;
    const st = await fs.stat(path.join(dir, n)).catch(() => undefined);
    if (st) out.set(n, { bytes: sized ? st.size : 0, usedAt: st.mtimeMs });
  }
  return out;
}

/** Bytes of the regular files under `dir`. */
export async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await treeBytes(p);
    else if (e.isFile()) total += (await fs.lstat(p).catch(() => undefined))?.size ?? 0;
  }
  return total;
}
