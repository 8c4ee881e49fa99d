// Removing what removed images leave unreferenced (rmi, image prune): their layers, then their
// manifest, config and layer blobs. The store's reference rule (engine/store/refs.ts) decides
// what stays: a remaining image's chain, a lease (a running build), an overlay mount, anything
// stored while a lease is open. An instruction cache entry does not keep an image's layer
// here (as docker's classic builder, whose cache is its images): the entry then misses and
// `builder prune` takes it. The rest of the store's garbage is engine/cache/gc.ts's.
import { asDigest, type Digest } from '../digest.js';
import type { ImageManifest } from '../image/types.js';
import type { ImageRecord } from './images.js';
import { heldLayers, leaseRefs, mountedLayers, storedLayers, type ImageRefs } from './refs.js';
import type { Store } from './store.js';
import { layerUsage } from './usage.js';

export interface CollectedImage {
  image: ImageRecord;
  /** chainIDs removed with it, top layer first (docker's `Deleted:` rows after the image's). */
  layers: Digest[];
}

export interface CollectResult {
  images: CollectedImage[];
  /** docker-style bytes of the removed layers (what `Total reclaimed space` counts). */
  reclaimed: number;
}

/**
 * Removes the layers and blobs of `removed` (images already taken out of index.json) that
 * nothing in `remaining` refers to. Images are handled in order, so a layer two removed
 * images share is reported with the last of them, as docker's release of references does.
 */
export async function collectRemoved(store: Store, removed: ImageRecord[], remaining: ImageRecord[]): Promise<CollectResult> {
  const stored = await storedLayers(store);
  const leases = await leaseRefs(store, stored);
  // What holds layers besides the images: leases, mounts, the open-lease window.
  const noImages: ImageRefs = { manifests: [], layers: new Map(), intermediate: new Map(), blobs: new Set(), blobsOf: new Map(), intermediateOnly: new Set() };
  const pinned = heldLayers(store, stored, noImages, leases, await mountedLayers());
  const held = new Map<Digest, number>();
  const hold = (r: ImageRecord, n: number) => {
    for (const c of r.chain) held.set(c, (held.get(c) ?? 0) + n);
  };
  for (const r of [...remaining, ...removed]) hold(r, 1);

  const result: CollectResult = { images: [], reclaimed: 0 };
  const goneLayers = new Set<Digest>();
  for (const image of removed) {
    hold(image, -1);
    const layers: Digest[] = [];
    for (const chain of [...image.chain].reverse()) {
      if ((held.get(chain) ?? 0) > 0 || goneLayers.has(chain)) continue;
      // A layer a running build holds stays; a later rmi or prune takes it.
      const layer = stored.get(chain);
      if (pinned.has(chain) || !layer) continue;
      const bytes = await layerUsage(store, chain).catch(() => 0);
      if (!(await store.removeLayer(chain, layer.storedAt))) continue;
      result.reclaimed += bytes;
      goneLayers.add(chain);
      layers.push(chain);
    }
    result.images.push({ image, layers });
  }
  await removeBlobs(store, removed, remaining, goneLayers, leases.blobs);
  return result;
}

async function removeBlobs(store: Store, removed: ImageRecord[], remaining: ImageRecord[], goneLayers: Set<Digest>, leased: Set<Digest>): Promise<void> {
  const keep = new Set<string>(leased);
  for (const r of remaining) {
    keep.add(r.id);
    for (const m of r.manifests) {
      keep.add(m);
      const manifest = await store.readJsonBlob<ImageManifest>(m).catch(() => undefined);
      for (const l of manifest?.layers ?? []) keep.add(l.digest);
    }
    // A layer kept (shared, or mounted) keeps the blob it was unpacked from.
    for (const c of r.chain) {
      const blob = await store.readLayerMeta(c).then(
        (m) => m.blob?.digest,
        () => undefined,
      );
      if (blob) keep.add(blob);
    }
  }
  const drop = new Set<Digest>();
  for (const r of removed) {
    drop.add(r.id);
    for (const m of r.manifests) {
      drop.add(m);
      const manifest = await store.readJsonBlob<ImageManifest>(m).catch(() => undefined);
      for (const l of manifest?.layers ?? []) {
        // Only blobs of layers that went: a layer still stored may be unpacked from it.
        const chainIndex = manifest!.layers.indexOf(l);
        const chain = r.chain[chainIndex];
        if (chain && goneLayers.has(chain)) drop.add(asDigest(l.digest));
      }
    }
  }
  for (const d of drop) if (!keep.has(d)) await store.removeBlob(d);
}
